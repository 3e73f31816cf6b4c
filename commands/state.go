package commands

import (
	"time"

	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// runningInfo is a listed worker with the state the spawner sees now.
func runningInfo(sp Spawner, w spawner.Worker, now time.Time) wire.WorkerInfo {
	info := infoOf(w, now)
	info.State = string(sp.StateOf(w))
	return info
}

// departedInfo is an exited worker, or one waiting for its restart: it
// holds no process, so its pid, uptime and memory are 0.
func departedInfo(d spawner.Departed) wire.WorkerInfo {
	info := infoOf(d.Worker, d.Worker.StartedAt())
	info.PID, info.RSSBytes, info.UptimeMS = 0, 0, 0
	info.State, info.ExitedAt, info.RanMS = string(d.State), wire.Time{Time: d.ExitedAt}, d.Exit.RanMS
	info.Signal = d.Exit.Signal
	if d.Exit.Signal == "" && d.Exit.Code >= 0 {
		code := d.Exit.Code
		info.ExitCode = &code
	}
	if !d.RestartAt.IsZero() {
		info.RestartAt = wire.Time{Time: d.RestartAt}
	}
	return info
}
