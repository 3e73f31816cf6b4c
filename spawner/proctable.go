package spawner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

func init() {
	// Boot time does not change while the agent runs; without the cache
	// gopsutil re-reads it for every process it inspects.
	process.EnableBootTimeCache(true)
}

// List returns every worker of this hive in the process table, sorted by id.
func (s *Spawner) List(ctx context.Context) ([]Worker, error) {
	return s.scan(ctx, func(m marker) bool { return m.hive() == s.cfg.HiveID })
}

// Find returns the worker of this hive with the given id, or ErrWorkerNotFound.
func (s *Spawner) Find(ctx context.Context, workerID string) (Worker, error) {
	ws, err := s.scan(ctx, func(m marker) bool { return m.hive() == s.cfg.HiveID && m.worker() == workerID })
	if err != nil {
		return Worker{}, err
	}
	if len(ws) == 0 {
		return Worker{}, fmt.Errorf("%w: no worker %q on hive %s", ErrWorkerNotFound, workerID, s.cfg.HiveID)
	}
	return ws[0], nil
}

// scan walks the process table and returns the workers whose marker passes
// keep. A worker is a process that carries a marker, leads its own process
// group (its children inherit the marker but not the leadership), and runs
// as the agent's user. When several processes claim one worker id (a child
// that called setsid itself) the oldest is the worker.
func (s *Spawner) scan(ctx context.Context, keep func(marker) bool) ([]Worker, error) {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read process table: %w", err)
	}
	self := os.Getpid()
	byID := map[[2]string]Worker{}
	for _, pid := range pids {
		if int(pid) == self {
			continue
		}
		w, ok := s.inspect(ctx, int(pid), keep)
		if !ok {
			continue
		}
		key := [2]string{w.HiveID, w.WorkerID}
		if old, dup := byID[key]; dup && old.StartTime <= w.StartTime {
			continue
		}
		byID[key] = w
	}
	out := make([]Worker, 0, len(byID))
	for _, w := range byID {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].HiveID != out[j].HiveID {
			return out[i].HiveID < out[j].HiveID
		}
		return out[i].WorkerID < out[j].WorkerID
	})
	return out, nil
}

// inspect reads one process and returns it as a worker when it is one.
// Any error (the process exited, belongs to someone else) means "not a worker".
func (s *Spawner) inspect(ctx context.Context, pid int, keep func(marker) bool) (Worker, bool) {
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		return Worker{}, false
	}
	p := &process.Process{Pid: int32(pid)}
	env, err := p.EnvironWithContext(ctx)
	if err != nil {
		return Worker{}, false
	}
	m := parseMarker(env)
	if m == nil || !keep(m) {
		return Worker{}, false
	}
	uids, err := p.UidsWithContext(ctx)
	if err != nil || len(uids) < 2 || int(uids[1]) != s.euid {
		return Worker{}, false
	}
	st, err := processStartTime(ctx, pid)
	if err != nil {
		return Worker{}, false
	}
	w := Worker{PID: pid, StartTime: st}
	m.apply(&w)
	if mem, err := p.MemoryInfoWithContext(ctx); err == nil {
		w.RSSBytes = mem.RSS
	}
	return w, true
}

// verify re-reads w's process right before the agent acts on it and
// reports whether it is still the same worker: same pid, same start time,
// same marker, still its group's leader, still the agent's user.
func (s *Spawner) verify(ctx context.Context, w Worker) error {
	now, ok := s.inspect(ctx, w.PID, func(m marker) bool {
		return m.hive() == w.HiveID && m.worker() == w.WorkerID
	})
	if !ok || now.StartTime != w.StartTime {
		return fmt.Errorf("%w: worker %s (pid %d) is gone", ErrWorkerNotFound, w.WorkerID, w.PID)
	}
	return nil
}

// processStartTime is when pid started, in ms since the epoch.
func processStartTime(ctx context.Context, pid int) (int64, error) {
	ms, err := (&process.Process{Pid: int32(pid)}).CreateTimeWithContext(ctx)
	if err != nil {
		return 0, err
	}
	return ms + startTimeOffsetMS(), nil
}

// groupGone reports whether no live (non-zombie) process is left in the
// process group pgid. Zombies are dead: they only wait for their parent,
// which after an agent restart may be an init that reaps late or never.
func groupGone(ctx context.Context, pgid int) bool { return liveInGroup(ctx, pgid, 1) == 0 }

// liveInGroup counts the live processes of group pgid, stopping at limit
// (0: no limit).
func liveInGroup(ctx context.Context, pgid, limit int) int {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return 0
	}
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return 1 // cannot tell: assume someone is left
	}
	n := 0
	for _, pid := range pids {
		if g, err := syscall.Getpgid(int(pid)); err != nil || g != pgid {
			continue
		}
		if !isZombie(ctx, int(pid)) {
			n++
			if n == limit {
				break
			}
		}
	}
	return n
}

func isZombie(ctx context.Context, pid int) bool {
	st, err := (&process.Process{Pid: int32(pid)}).StatusWithContext(ctx)
	if err != nil {
		return true // gone while we looked
	}
	return len(st) > 0 && st[0] == process.Zombie
}

// waitGroupGone waits until the group is gone or the timeout passes. It
// polls with a growing interval, starting at 1 ms, so a prompt exit is seen
// promptly; leaderExited, when not nil, wakes it as soon as the leader exits.
func waitGroupGone(ctx context.Context, pgid int, timeout time.Duration, leaderExited func(time.Duration) bool) bool {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		if groupGone(ctx, pgid) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		wait := min(interval, left)
		if leaderExited == nil || leaderExited(0) {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return false
			}
		} else {
			leaderExited(min(left, 250*time.Millisecond)) // wakes the moment the leader exits
		}
		interval = min(interval*2, 50*time.Millisecond)
	}
}
