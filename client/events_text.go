package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EventText is one event as `hive-agent events` prints it: time, hive,
// kind, worker and what happened.
func EventText(e HiveEvent) string {
	worker := e.WorkerID
	if worker == "" {
		worker = "-"
	}
	return fmt.Sprintf("%s  %-10s %-17s %-10s %s", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.HiveID, e.Kind, worker, eventWhat(e))
}

// eventBody holds the fields of every event kind that EventText reads.
type eventBody struct {
	PID         int      `json:"pid"`
	Port        int      `json:"port"`
	ModelID     string   `json:"model_id"`
	Restart     int      `json:"restart"`
	RestartInMS int64    `json:"restart_in_ms"`
	ExitCode    *int     `json:"exit_code"`
	Signal      string   `json:"signal"`
	RanMS       int64    `json:"ran_ms"`
	Adopted     bool     `json:"adopted"`
	ByJobID     string   `json:"by_job_id"`
	GraceMS     int64    `json:"grace_ms"`
	Failures    int      `json:"failures"`
	LastError   string   `json:"last_error"`
	Action      string   `json:"action"`
	Reason      string   `json:"reason"`
	Workers     []Worker `json:"workers"`
	StopWorkers bool     `json:"stop_workers"`
	DeadlineMS  int64    `json:"deadline_ms"`
	MaxRestarts int      `json:"max_restarts"`
	Device      string   `json:"device"`
	UUID        string   `json:"uuid"`
	FreedMiB    int64    `json:"freed_mib"`
	MS          int64    `json:"ms"`
	PIDs        []int    `json:"pids"`
	UsedMiB     int64    `json:"used_mib"`
}

func eventWhat(e HiveEvent) string {
	var b eventBody
	if err := json.Unmarshal(e.Data, &b); err != nil {
		return string(e.Data)
	}
	ms := func(n int64) string { return (time.Duration(n) * time.Millisecond).String() }
	switch e.Kind {
	case "worker.started":
		s := fmt.Sprintf("started as pid %d on port %d (model %s)", b.PID, b.Port, b.ModelID)
		if b.Restart > 0 {
			s += fmt.Sprintf(", restart %d", b.Restart)
		}
		return s
	case "worker.exited":
		how := "exited (status unknown: adopted)"
		switch {
		case b.Signal != "":
			how = "killed by " + b.Signal
		case b.ExitCode != nil:
			how = fmt.Sprintf("exited with status %d", *b.ExitCode)
		}
		s := fmt.Sprintf("pid %d %s after %s", b.PID, how, ms(b.RanMS))
		if b.Restart > 0 {
			s += fmt.Sprintf("; restart %d in %s", b.Restart, ms(b.RestartInMS))
		}
		return s
	case "worker.stopping":
		return fmt.Sprintf("pid %d stopping (job %s, grace %s)", b.PID, b.ByJobID, ms(b.GraceMS))
	case "worker.unhealthy":
		return fmt.Sprintf("pid %d unhealthy after %d failed checks (last: %s); action: %s", b.PID, b.Failures, b.LastError, b.Action)
	case "worker.healthy":
		return fmt.Sprintf("pid %d answers its health check again", b.PID)
	case "agent.draining":
		if b.StopWorkers {
			return fmt.Sprintf("draining; workers stopped after %s", ms(b.DeadlineMS))
		}
		return "draining: no new workers until resume"
	case "agent.resumed":
		return "resumed: starts workers again"
	case "worker.restart_resumed":
		return fmt.Sprintf("restart %d of %d, announced by an earlier agent, resumed: due in %s", b.Restart, b.MaxRestarts, ms(b.RestartInMS))
	case "worker.restart_abandoned":
		return "restart announced by an earlier agent abandoned: " + b.Reason
	case "gpu.released":
		return fmt.Sprintf("%s (%s) released: %d MiB freed after %s", b.Device, b.UUID, b.FreedMiB, ms(b.MS))
	case "gpu.tainted":
		pids := make([]string, len(b.PIDs))
		for i, p := range b.PIDs {
			pids[i] = strconv.Itoa(p)
		}
		return fmt.Sprintf("%s (%s) tainted: pids %s still hold %d MiB; it refuses spawns until they are gone",
			b.Device, b.UUID, strings.Join(pids, ", "), b.UsedMiB)
	case "inventory":
		ids := make([]string, len(b.Workers))
		for i, w := range b.Workers {
			ids[i] = w.WorkerID
		}
		return strings.TrimSpace(fmt.Sprintf("inventory (%s): %d worker(s) %s", b.Reason, len(b.Workers), strings.Join(ids, " ")))
	}
	return string(e.Data)
}
