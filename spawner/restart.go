package spawner

import (
	"context"
	"sync"
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

// restartHold arbitrates between a spawn that waits for its worker and
// the worker's exit, so that callers are never told two things: a spawn
// that answered an error (the worker died inside the alive window or
// before it was ready, or the wait ended otherwise) never leaves a
// restarting worker behind, and a spawn that answered success leaves the
// worker under its policy. Whichever comes first under the lock wins: the
// wait's success (release) or the exit's handling (reaped).
type restartHold struct {
	mu sync.Mutex
	// held: a wait is going on, or one failed; released: one succeeded.
	held, released, reaped bool
}

// take starts a wait's hold, unless an earlier wait succeeded.
func (r *restartHold) take() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.released {
		r.held = true
	}
}

// release ends a successful wait's hold; false when the worker's exit was
// handled first (the wait must then report the exit).
func (r *restartHold) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reaped {
		return false
	}
	r.held, r.released = false, true
	return true
}

// exited records the worker's exit and reports whether a spawn's wait
// holds its policy (then it is not restarted).
func (r *restartHold) exited() (held bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reaped = true
	return r.held
}

func (e Exit) failed() bool { return e.Signal != "" || e.Code != 0 }

// planRestart decides whether the worker of h, which exited by itself, is
// started again, and registers the restart so a delete can cancel it from
// now on, in memory and in a record on disk that a later agent honours if
// this one is gone before the backoff ends. It returns the attempt number
// and the backoff.
func (s *Spawner) planRestart(h *Handle) (attempt int, delay time.Duration, ok bool) {
	p := h.spec.Restart
	if !p.OnFailure || h.exit.SpawnFailed || !h.exit.failed() || h.Restarts >= p.Max {
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
	if err := s.writeRecord(h.spec, h.Port, attempt, time.Now().Add(delay)); err != nil {
		s.cfg.Logger.Warn("cannot record a pending restart; an agent started during the backoff will not know of it",
			"worker_id", h.WorkerID, "restart", attempt, "err", err)
	}
	s.mu.Unlock()
	return attempt, delay, true
}

// scheduleRestart starts the planned restart after delay, unless a delete
// cancelled it first. It is called once the exit was reported, so the
// exit's event always precedes the restart's. A closed Spawner leaves the
// restart to the next agent (its record stays).
func (s *Spawner) scheduleRestart(h *Handle, attempt int, delay time.Duration) {
	spec := h.spec
	spec.Port, spec.attempt = h.Port, attempt
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.restarts[h.WorkerID]
	if p == nil || p.cancelled || s.closed {
		return
	}
	p.timer = time.AfterFunc(delay, func() { s.restart(spec, p) })
}

func (s *Spawner) restart(spec Spec, p *pendingRestart) {
	s.mu.Lock()
	if s.restarts[spec.WorkerID] != p || p.cancelled || s.closed {
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
	// Removed only now, so an agent killed during the start still finds
	// it (and then the worker running: see resumeRestarts); only if it is
	// this restart's, the new worker may already have failed again.
	s.removeRecord(spec.WorkerID, spec.attempt)
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
// whether there was one: one this Spawner waits for, or one recorded on
// disk by an earlier agent. A delete calls it first, so a worker waiting
// for its restart is not started again.
func (s *Spawner) CancelRestart(workerID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	recorded := s.removeRecord(workerID, 0)
	p, ok := s.restarts[workerID]
	if !ok || p.cancelled {
		return recorded
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

// Close stops this Spawner's pending restart timers; their records stay,
// so the next agent of the hive restarts those workers when their backoff
// ends (a worker's restart policy outlives the agent that applied it).
// Backoffs that begin after Close are only recorded. Workers keep running;
// everything else keeps working.
func (s *Spawner) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, p := range s.restarts {
		if p.timer != nil && !p.starting {
			p.timer.Stop()
		}
	}
}
