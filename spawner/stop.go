package spawner

import (
	"context"
	"fmt"
	"time"
)

// KillWait bounds the wait for a worker's processes to go after SIGKILL.
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

// Stop stops the worker of this hive named workerID and everything it
// started: SIGTERM to its process group, to every process elsewhere that
// carries its marker (children that called setsid) and, in cgroup mode, to
// every process of its cgroup; then SIGKILL to all of them (cgroup.kill in
// cgroup mode) when they have not gone after grace. The worker is looked
// up by its marker and re-verified (pid, start time, marker, user) through
// a handle that pins the process, right before the first signal; a pid
// alone is never signalled. onSignal, when set, is called right before
// each signal is sent, so a caller can announce the stop first. Once Stop
// returned nil, no process carrying the worker's marker is left, its id is
// free, and for a worker this Spawner watches (started or adopted) OnExit
// has returned.
func (s *Spawner) Stop(ctx context.Context, workerID string, grace time.Duration, onSignal func(sig string, w Worker)) (StopResult, error) {
	w, h, err := s.pin(ctx, workerID)
	if err != nil {
		return StopResult{}, err
	}
	defer h.Close()
	m := s.membersOf(w, s.cg.of(w))
	s.mu.Lock()
	exitHandled := s.watched[w.PID].done // nil when not watched
	s.mu.Unlock()
	s.stopping.Store(w.PID, struct{}{})
	defer func() {
		// A watched worker's exit may be handled after Stop returned: it
		// then finds the entry and leaves alone what it would otherwise
		// take for leftovers (by then perhaps a new worker of this id).
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, watched := s.watched[w.PID]; !watched {
			s.stopping.Delete(w.PID)
		}
	}()
	res := StopResult{Worker: w}
	start := time.Now()
	// A pgid is pinned while its leader lives or any member is left; once
	// everything is gone the number may be reused, so nothing is sent then
	// (and Signal stays empty: the worker ended before it was signalled).
	if h.Exited(0) && m.gone(ctx) {
		return res, nil
	}
	var sig func(string)
	if onSignal != nil {
		sig = func(name string) { onSignal(name, w) }
	}
	last, ok, err := m.stop(ctx, grace, h.Exited, sig)
	res.Signal = last
	if err != nil {
		return res, fmt.Errorf("signal worker %s (pgid %d): %w", w.WorkerID, w.PID, err)
	}
	if !ok {
		return res, fmt.Errorf("worker %s (pgid %d) still has processes %s after SIGKILL", w.WorkerID, w.PID, KillWait)
	}
	removeCgroup(m.cgroup)
	res.StoppedMS = time.Since(start).Milliseconds()
	// A worker this Spawner watches has its exit reported before the stop
	// answers, so a caller's exited event comes before its delete reply.
	if exitHandled != nil {
		select {
		case <-exitHandled:
		case <-time.After(KillWait):
		}
	}
	return res, nil
}

// pin finds the worker named workerID and opens a handle on it, then
// checks through the handle that it is still that worker. A worker this
// Spawner watches is tried first, without a scan of the process table (the
// check reads its process alone); the scan is the fallback, for workers of
// other agents and for a watched worker that is gone.
func (s *Spawner) pin(ctx context.Context, workerID string) (Worker, *procHandle, error) {
	if w, ok := s.watchedWorker(workerID); ok {
		if h, err := openProcess(w.PID); err == nil {
			if s.verify(ctx, w) == nil {
				return w, h, nil
			}
			h.Close()
		}
	}
	w, err := s.Find(ctx, workerID)
	if err != nil {
		return Worker{}, nil, err
	}
	h, err := openProcess(w.PID)
	if err != nil { // only ESRCH: without pidfds it falls back to polling
		return Worker{}, nil, fmt.Errorf("%w: worker %s (pid %d) is gone", ErrWorkerNotFound, w.WorkerID, w.PID)
	}
	// The handle is taken: if the pid had been reused by now, the check
	// below sees the new process and refuses.
	if err := s.verify(ctx, w); err != nil {
		h.Close()
		return Worker{}, nil, err
	}
	return w, h, nil
}

// watchedWorker returns the worker of this hive named workerID that this
// Spawner watches, if any.
func (s *Spawner) watchedWorker(workerID string) (Worker, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.watched {
		if x.w.WorkerID == workerID && x.w.HiveID == s.cfg.HiveID {
			return x.w, true
		}
	}
	return Worker{}, false
}

func (s *Spawner) membersOf(w Worker, cgroup string) *members {
	return &members{w: w, euid: s.euid, cgroup: cgroup, mount: s.cg.mount, other: s.otherWorker(w.PID), markers: &s.markers}
}

// otherWorker returns a check whether a process carrying w's marker belongs
// to another worker of the same id that this Spawner watches (a new one,
// started after w exited): the worker itself, its group, or its direct
// children. Those are never w's leftovers.
func (s *Spawner) otherWorker(wpid int) func(pid int, st procStat) bool {
	return func(pid int, st procStat) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, id := range []int{pid, st.pgid, st.ppid} {
			if _, ok := s.watched[id]; ok && id != wpid {
				return true
			}
		}
		return false
	}
}

// stopLeftovers stops what a worker whose main process exited by itself
// (it crashed, or was killed from outside) left behind: its group, its
// marked escapees, its cgroup. Children it forked would otherwise run on
// unseen, holding memory, GPUs and ports, since only a worker's main
// process is ever listed. It returns how many processes were left.
func (s *Spawner) stopLeftovers(w Worker, cgroup string) int {
	ctx := context.Background()
	m := s.membersOf(w, cgroup)
	n := m.live(ctx, 0)
	if n > 0 {
		s.cfg.Logger.Warn("worker exited and left processes behind; stopping them",
			"worker_id", w.WorkerID, "pgid", w.PID, "processes", n)
		if _, ok, _ := m.stop(ctx, s.cfg.LeftoverGrace, nil, nil); !ok {
			s.cfg.Logger.Error("processes of an exited worker survive SIGKILL", "worker_id", w.WorkerID, "pgid", w.PID)
		}
	}
	removeCgroup(cgroup)
	return n
}
