package spawner

import (
	"context"
	"time"
)

// RestartPolicy says whether a worker that fails is started again.
type RestartPolicy struct {
	// OnFailure restarts a worker that exits by itself with a non-zero
	// status or a signal the agent did not send.
	OnFailure bool
	// Max bounds the restarts of one spawn.
	Max int
}

// MaxRestartBackoff caps the wait before a restart, which doubles from
// Config.RestartBackoff with each attempt.
const MaxRestartBackoff = time.Minute

// pendingRestart is a restart waiting for its backoff, or starting. A
// delete cancels it; one that cancels a starting restart stops the worker
// once it started.
type pendingRestart struct {
	timer     *time.Timer
	starting  bool
	cancelled bool
}

func (e Exit) failed() bool { return e.Signal != "" || e.Code != 0 }

// planRestart decides whether the worker of h, which exited by itself, is
// started again, and registers the restart so a delete can cancel it from
// now on. It returns the attempt number and the backoff.
func (s *Spawner) planRestart(h *Handle) (attempt int, delay time.Duration, ok bool) {
	p := h.spec.Restart
	if !p.OnFailure || !h.exit.failed() || h.Restarts >= p.Max {
		return 0, 0, false
	}
	attempt = h.Restarts + 1
	delay = s.cfg.RestartBackoff
	for i := 1; i < attempt && delay < MaxRestartBackoff; i++ {
		delay *= 2
	}
	delay = min(delay, MaxRestartBackoff)
	s.mu.Lock()
	s.restarts[h.WorkerID] = &pendingRestart{}
	s.mu.Unlock()
	return attempt, delay, true
}

// scheduleRestart starts the planned restart after delay, unless a delete
// cancelled it first. It is called once the exit was reported, so the
// exit's event always precedes the restart's.
func (s *Spawner) scheduleRestart(h *Handle, attempt int, delay time.Duration) {
	spec := h.spec
	spec.Port, spec.attempt = h.Port, attempt
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.restarts[h.WorkerID]
	if p == nil || p.cancelled {
		return
	}
	p.timer = time.AfterFunc(delay, func() { s.restart(spec, p) })
}

func (s *Spawner) restart(spec Spec, p *pendingRestart) {
	s.mu.Lock()
	if s.restarts[spec.WorkerID] != p || p.cancelled {
		s.mu.Unlock()
		return
	}
	p.starting = true
	s.mu.Unlock()
	h, err := s.Start(context.Background(), spec)
	if err == nil {
		h.Settle() // nobody waits for a restart
	}
	s.mu.Lock()
	cancelled := p.cancelled
	if s.restarts[spec.WorkerID] == p {
		delete(s.restarts, spec.WorkerID)
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		s.cfg.Logger.Error("restart worker", "worker_id", spec.WorkerID, "attempt", spec.attempt, "err", err)
	case cancelled:
		if _, err := s.Stop(context.Background(), spec.WorkerID, s.cfg.LeftoverGrace, nil); err != nil {
			s.cfg.Logger.Error("stop a restarted worker whose delete came during its start", "worker_id", spec.WorkerID, "err", err)
		}
	}
}

// CancelRestart cancels the pending restart of workerID and reports
// whether there was one. A delete calls it first, so a worker waiting for
// its restart is not started again.
func (s *Spawner) CancelRestart(workerID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.restarts[workerID]
	if !ok || p.cancelled {
		return false
	}
	p.cancelled = true
	if p.timer != nil {
		p.timer.Stop()
	}
	if !p.starting {
		delete(s.restarts, workerID)
	}
	return true
}
