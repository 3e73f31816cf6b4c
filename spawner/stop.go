package spawner

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// KillWait bounds the wait for a process group to go after SIGKILL.
const KillWait = 10 * time.Second

// StopResult says how a worker was stopped.
type StopResult struct {
	Worker Worker
	// Signal is the last signal sent: SIGTERM, or SIGKILL when the grace ran
	// out (or the agent was stopping); empty when the worker exited on its
	// own between being found and being signalled.
	Signal    string
	StoppedMS int64
}

// Stop stops the worker of this hive named workerID: SIGTERM to its process
// group, then SIGKILL to the group when it has not gone after grace. The
// worker is looked up by its marker and re-verified (pid, start time,
// marker, user) through a handle that pins the process, right before the
// first signal; a pid alone is never signalled. onSignal, when set, is told
// each signal as it is sent.
func (s *Spawner) Stop(ctx context.Context, workerID string, grace time.Duration, onSignal func(sig string, w Worker)) (StopResult, error) {
	w, err := s.Find(ctx, workerID)
	if err != nil {
		return StopResult{}, err
	}
	h, err := openProcess(w.PID)
	if err != nil { // only ESRCH: without pidfds it falls back to polling
		return StopResult{}, fmt.Errorf("%w: worker %s (pid %d) is gone", ErrWorkerNotFound, w.WorkerID, w.PID)
	}
	defer h.Close()
	// The handle is taken: if the pid had been reused by now, the check
	// below sees the new process and refuses.
	if err := s.verify(ctx, w); err != nil {
		return StopResult{}, err
	}
	s.stopping.Store(w.PID, struct{}{})
	defer s.stopping.Delete(w.PID)
	res := StopResult{Worker: w}
	start := time.Now()
	// A pgid is pinned while its leader lives or any member is left; once
	// the group is empty the number may be reused, so nothing is sent then
	// (and Signal stays empty: the worker ended before it was signalled).
	if !h.Exited(0) || !groupGone(ctx, w.PID) {
		if err := syscall.Kill(-w.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return res, fmt.Errorf("signal worker %s (pgid %d): %w", w.WorkerID, w.PID, err)
		}
		res.Signal = "SIGTERM"
		if onSignal != nil {
			onSignal("SIGTERM", w)
		}
	}
	// When ctx ends during the grace (the agent is stopping), the stop is
	// finished with SIGKILL at once rather than left half done.
	if !waitGroupGone(ctx, w.PID, grace, h.Exited) {
		ctx = context.WithoutCancel(ctx)
		// The group still has members, so its id cannot have been reused.
		res.Signal = "SIGKILL"
		if err := syscall.Kill(-w.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return res, fmt.Errorf("kill worker %s (pgid %d): %w", w.WorkerID, w.PID, err)
		}
		if onSignal != nil {
			onSignal("SIGKILL", w)
		}
		if !waitGroupGone(ctx, w.PID, KillWait, h.Exited) {
			return res, fmt.Errorf("worker %s (pgid %d) still has processes %s after SIGKILL", w.WorkerID, w.PID, KillWait)
		}
	}
	res.StoppedMS = time.Since(start).Milliseconds()
	return res, nil
}
