package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/hive-agent/wire"
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

// eventWhat says what happened, read from the event's wire type; a body
// that is not one is shown as it is.
func eventWhat(e HiveEvent) string {
	ok := func(v any) bool { return json.Unmarshal(e.Data, v) == nil }
	ms := func(n int64) string { return (time.Duration(n) * time.Millisecond).String() }
	switch e.Kind {
	case "worker.started":
		var b wire.StartedEvent
		if !ok(&b) {
			break
		}
		s := fmt.Sprintf("started as pid %d on port %d (model %s)", b.PID, b.Port, b.ModelID)
		if b.Restart > 0 {
			s += fmt.Sprintf(", restart %d", b.Restart)
		}
		return s
	case "worker.exited":
		var b wire.ExitedEvent
		if !ok(&b) {
			break
		}
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
		var b wire.StoppingEvent
		if ok(&b) {
			return fmt.Sprintf("pid %d stopping (job %s, grace %s)", b.PID, b.ByJobID, ms(b.GraceMS))
		}
	case "worker.unhealthy":
		var b wire.UnhealthyEvent
		if ok(&b) {
			return fmt.Sprintf("pid %d unhealthy after %d failed checks (last: %s); action: %s", b.PID, b.Failures, b.LastError, b.Action)
		}
	case "worker.healthy":
		var b wire.UnhealthyEvent
		if ok(&b) {
			return fmt.Sprintf("pid %d answers its health check again", b.PID)
		}
	case "agent.draining":
		var b wire.DrainEvent
		if !ok(&b) {
			break
		}
		if b.StopWorkers {
			return fmt.Sprintf("draining; workers stopped after %s", ms(b.DeadlineMS))
		}
		return "draining: no new workers until resume"
	case "agent.resumed":
		return "resumed: starts workers again"
	case "worker.restart_resumed":
		var b wire.PendingRestartEvent
		if !ok(&b) {
			break
		}
		in := int64(0)
		if b.RestartInMS != nil {
			in = *b.RestartInMS
		}
		return fmt.Sprintf("restart %d of %d, announced by an earlier agent, resumed: due in %s", b.Restart, b.MaxRestarts, ms(in))
	case "worker.restart_abandoned":
		var b wire.PendingRestartEvent
		if ok(&b) {
			return "restart announced by an earlier agent abandoned: " + b.Reason
		}
	case "gpu.released":
		var b wire.GPUReleased
		if ok(&b) {
			return fmt.Sprintf("%s (%s) released: %d MiB freed after %s", b.Device, b.UUID, b.FreedMiB, ms(b.MS))
		}
	case "gpu.tainted":
		var b wire.GPUTainted
		if !ok(&b) {
			break
		}
		pids := make([]string, len(b.PIDs))
		for i, p := range b.PIDs {
			pids[i] = strconv.Itoa(p)
		}
		return fmt.Sprintf("%s (%s) tainted: pids %s still hold %d MiB; it refuses spawns until they are gone",
			b.Device, b.UUID, strings.Join(pids, ", "), b.UsedMiB)
	case "inventory":
		var b wire.InventoryEvent
		if !ok(&b) {
			break
		}
		ids := make([]string, len(b.Workers))
		for i, w := range b.Workers {
			ids[i] = w.WorkerID
		}
		return strings.TrimSpace(fmt.Sprintf("inventory (%s): %d worker(s) %s", b.Reason, len(b.Workers), strings.Join(ids, " ")))
	}
	return string(e.Data)
}
