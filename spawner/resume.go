package spawner

import (
	"context"
	"time"
)

// PendingRestart is a restart an earlier agent of this hive announced (a
// worker failed and its backoff began) but did not live to start, found
// by Adopt in the hive's restart records.
type PendingRestart struct {
	// Worker is the worker as it will be started again: id, job, command,
	// model, device, type, port, policy; Restarts is the restart that is
	// due. Only WorkerID is sure to be set when the record was unreadable.
	Worker Worker
	// Due is when the backoff ends; a restart overdue is started at once.
	Due time.Time
	// Abandoned, when not nil, says why the restart will not happen; the
	// record is removed.
	Abandoned error
}

// resumeRestarts takes on the restarts recorded by an earlier agent that
// this Spawner does not know yet: it starts each when its backoff ends (at
// once when overdue) or abandons it, and tells OnPendingRestart which.
func (s *Spawner) resumeRestarts(ctx context.Context) []PendingRestart {
	var out []PendingRestart
	for _, id := range s.recordIDs() {
		s.mu.Lock()
		_, known := s.restarts[id]
		closed := s.closed
		s.mu.Unlock()
		if known || closed {
			continue
		}
		pr := PendingRestart{Worker: Worker{HiveID: s.cfg.HiveID, WorkerID: id}}
		r, err := readRecord(s.recordPath(id))
		spec := Spec{}
		if err == nil {
			pr.Worker = Worker{HiveID: s.cfg.HiveID, WorkerID: id, JobID: r.JobID, CommandID: r.CommandID,
				ModelID: r.ModelID, Device: r.Device, WorkerType: WorkerType(r.WorkerType), Port: r.Port,
				BinaryPath: r.BinaryPath, HealthPath: r.HealthPath, ReadyStatus: r.ReadyStatus,
				Restart: RestartPolicy{OnFailure: true, Max: r.MaxRestarts}, Restarts: r.Restart}
			pr.Due = time.UnixMilli(r.DueMS)
			spec, err = r.spec(id)
		}
		if err == nil {
			if w, ferr := s.Find(ctx, id); ferr == nil {
				err = &RunningError{Worker: w} // started already (the earlier agent died right after)
			}
		}
		if !s.takeRecord(id, spec, pr, err) {
			continue
		}
		pr.Abandoned = err
		if err != nil {
			s.cfg.Logger.Warn("abandoning a pending restart left by an earlier agent", "worker_id", id, "restart", pr.Worker.Restarts, "err", err)
		} else {
			s.cfg.Logger.Info("resuming a pending restart left by an earlier agent", "worker_id", id, "restart", pr.Worker.Restarts,
				"due", pr.Due.UTC().Format(time.RFC3339Nano), "in", max(0, time.Until(pr.Due)).Round(time.Millisecond))
		}
		if s.cfg.OnPendingRestart != nil {
			s.cfg.OnPendingRestart(pr)
		}
		out = append(out, pr)
	}
	return out
}

// takeRecord registers the restart of a record (err nil) or removes the
// record (err set), unless this Spawner took it on meanwhile; it reports
// whether it did either.
func (s *Spawner) takeRecord(id string, spec Spec, pr PendingRestart, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.restarts[id]; known || s.closed {
		return false
	}
	if err != nil {
		s.removeRecord(id, 0)
		return true
	}
	p := &pendingRestart{}
	s.restarts[id] = p
	p.timer = time.AfterFunc(max(0, time.Until(pr.Due)), func() { s.restart(spec, p) })
	return true
}
