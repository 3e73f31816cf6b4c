package spawner

import (
	"context"
	"time"
)

// Adopt watches the workers of this hive that this Spawner does not watch
// yet (started by an earlier run of the agent, or by another agent of the
// hive), so that their exits are not unseen: when one exits, its leftovers
// are stopped and OnExit is called with Exit.Adopted set, within a second
// of the exit when nothing it left ignores SIGTERM. Call it once connected;
// it is idempotent and returns the workers it started watching now.
//
// Where pidfds work the exit is seen the moment it happens, though the
// adopted worker is not this process's child; elsewhere it is polled.
//
// It also takes on the restarts that an earlier agent of the hive
// announced but did not start (see PendingRestart and OnPendingRestart).
func (s *Spawner) Adopt(ctx context.Context) ([]Worker, error) {
	ws, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	adopted := []Worker{}
	for _, w := range ws {
		if s.isWatched(w.PID) {
			continue
		}
		h, err := openProcess(w.PID)
		if err != nil {
			continue // gone
		}
		// The handle is taken: a reused pid fails the check.
		if err := s.verify(ctx, w); err != nil {
			h.Close()
			continue
		}
		s.mu.Lock()
		if _, dup := s.watched[w.PID]; dup {
			s.mu.Unlock()
			h.Close()
			continue
		}
		done := make(chan struct{})
		s.watched[w.PID] = watched{w: w, done: done}
		s.mu.Unlock()
		cgroup := s.cg.of(w)
		processWatcher().add(&watch{
			pid:  w.PID,
			fd:   h.release(),
			gone: func() bool { return s.verify(context.Background(), w) != nil },
			fire: func() { s.adoptedExited(w, cgroup); close(done) },
		})
		adopted = append(adopted, w)
	}
	s.resumeRestarts(ctx)
	return adopted, nil
}

func (s *Spawner) isWatched(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.watched[pid]
	return ok
}

// adoptedExited reports the end of an adopted worker. Only its parent
// learns how a process ended, so the status is unknown.
func (s *Spawner) adoptedExited(w Worker, cgroup string) {
	e := Exit{Code: -1, Adopted: true, RanMS: max(0, time.Now().UnixMilli()-w.StartTime)}
	if !s.exited(w.PID) {
		e.Leftovers = s.stopLeftovers(w, cgroup)
	} else {
		removeCgroup(cgroup)
	}
	if s.cfg.OnExit != nil {
		s.cfg.OnExit(w, e)
	}
}
