//go:build unix

package spawner

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/shirou/gopsutil/v4/process"
)

// inspect reads one process and returns it as a worker when it is one.
// Any error (the process exited, belongs to someone else) means "not a worker".
func (s *Spawner) inspect(ctx context.Context, pid int, in inspection) (Worker, bool) {
	keep := in.keep
	// getpgid first: one system call rules out most processes.
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		return Worker{}, false
	}
	st, ok := readStat(pid)
	if !ok || st.pgid != pid || st.zombie {
		return Worker{}, false
	}
	key := keyOf(pid, st)
	m, cached := marker(nil), false
	if in.cached {
		m, cached = s.markers.get(key)
	}
	if !cached {
		b, err := readEnviron(pid)
		if err != nil {
			return Worker{}, false
		}
		if len(b) == 0 {
			// Right after the exec the kernel may not show the environment
			// yet; a child of this Spawner is known without it.
			return s.ownChild(ctx, pid, keep)
		}
		m = parseMarker(splitEnv(b))
		s.markers.put(key, m)
	}
	if m == nil || !keep(m) || !sameUser(pid, s.euid) {
		return Worker{}, false
	}
	parent := readMarker
	if in.parentMarker != nil {
		parent = in.parentMarker
	}
	if st.ppid > 1 && parent(st.ppid).is(m.hive(), m.worker()) {
		return Worker{}, false // a child of the worker that called setsid
	}
	w := Worker{PID: pid, StartTime: startMS(st.startTicks)}
	m.apply(&w)
	if in.withMemory {
		w.RSSBytes = s.memory(ctx, w)
	}
	return w, true
}

// ownChild returns pid when it is a live worker this Spawner started.
func (s *Spawner) ownChild(ctx context.Context, pid int, keep func(marker) bool) (Worker, bool) {
	s.mu.Lock()
	x, ok := s.watched[pid]
	s.mu.Unlock()
	if !ok || !x.own || !keep(parseMarker(markerEnv(x.w))) {
		return Worker{}, false
	}
	if start, err := processStartTime(ctx, pid); err != nil || start != x.w.StartTime {
		return Worker{}, false
	}
	return x.w, true
}

// memory is the worker's resident memory: its cgroup's total where the
// memory controller is on, else its main process's RSS.
func (s *Spawner) memory(ctx context.Context, w Worker) uint64 {
	if dir := s.cg.of(w); dir != "" {
		if n, ok := cgroupMemory(dir); ok {
			return n
		}
	}
	if mem, err := (&process.Process{Pid: int32(w.PID)}).MemoryInfoWithContext(ctx); err == nil {
		return mem.RSS
	}
	return 0
}

// processStartTime is when pid started, in ms since the epoch.
func processStartTime(_ context.Context, pid int) (int64, error) {
	st, ok := readStat(pid)
	if !ok {
		return 0, fmt.Errorf("read the start time of %d: %w", pid, syscall.ESRCH)
	}
	return startMS(st.startTicks), nil
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
	pids, err := allPids()
	if err != nil {
		return 1 // cannot tell: assume someone is left
	}
	n := 0
	for _, pid := range pids {
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		if st, ok := readStat(pid); ok && st.pgid == pgid && !st.zombie {
			n++
			if n == limit {
				break
			}
		}
	}
	return n
}
