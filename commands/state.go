package commands

import (
	"time"

	"github.com/rbee/hive-agent/spawner"
)

// WorkerStatus is the part of a worker entry that says how it is
// (PROTOCOL v1.2 "Worker state").
type WorkerStatus struct {
	// State is starting, loading, running, ready, unhealthy, stopping,
	// backoff or exited.
	State string `json:"state"`
	// Restarts counts the restarts of this worker id so far.
	Restarts int `json:"restarts"`
	// RestartAt is when a worker in backoff is started again.
	RestartAt string `json:"restart_at,omitempty"`
	// ExitCode or Signal, ExitedAt and RanMS are set on exited and
	// backoff entries (neither of the first two when the status is
	// unknown: a worker adopted from an earlier run).
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	ExitedAt string `json:"exited_at,omitempty"`
	RanMS    int64  `json:"ran_ms,omitempty"`
}

// runningInfo is a listed worker with the state the spawner sees now.
func runningInfo(sp Spawner, w spawner.Worker, now time.Time) WorkerInfo {
	info := infoOf(w, now)
	info.State = string(sp.StateOf(w))
	return info
}

// departedInfo is an exited worker, or one waiting for its restart: it
// holds no process, so its pid, uptime and memory are 0.
func departedInfo(d spawner.Departed) WorkerInfo {
	info := infoOf(d.Worker, d.Worker.StartedAt())
	info.PID, info.RSSBytes, info.UptimeMS = 0, 0, 0
	info.State, info.ExitedAt, info.RanMS = string(d.State), FormatTime(d.ExitedAt), d.Exit.RanMS
	info.Signal = d.Exit.Signal
	if d.Exit.Signal == "" && d.Exit.Code >= 0 {
		code := d.Exit.Code
		info.ExitCode = &code
	}
	if !d.RestartAt.IsZero() {
		info.RestartAt = FormatTime(d.RestartAt)
	}
	return info
}
