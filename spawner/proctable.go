package spawner

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"

	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/process"
	"github.com/tklauser/go-sysconf"
)

func init() {
	// Boot time does not change while the agent runs; without the cache
	// gopsutil re-reads it for every process it inspects.
	process.EnableBootTimeCache(true)
}

// List returns every worker of this hive in the process table, sorted by id.
func (s *Spawner) List(ctx context.Context) ([]Worker, error) {
	return s.scan(ctx, true, func(m marker) bool { return m.hive() == s.cfg.HiveID })
}

// Find returns the worker of this hive with the given id, or ErrWorkerNotFound.
func (s *Spawner) Find(ctx context.Context, workerID string) (Worker, error) {
	ws, err := s.scan(ctx, true, func(m marker) bool { return m.hive() == s.cfg.HiveID && m.worker() == workerID })
	if err != nil {
		return Worker{}, err
	}
	if len(ws) == 0 {
		return Worker{}, fmt.Errorf("%w: no worker %q on hive %s", ErrWorkerNotFound, workerID, s.cfg.HiveID)
	}
	return ws[0], nil
}

// scan walks the process table and returns the workers whose marker passes
// keep. A worker is a process that carries a marker, runs as the agent's
// user, leads its own process group (its children inherit the marker but
// not the leadership), and whose parent does not carry the same worker's
// marker (a child that called setsid leads a group too, but its parent is
// the worker). When several processes still claim one worker id (a
// setsid grandchild whose parent exited) the oldest is the worker.
//
// withMemory says whether the workers' RSS is wanted (it costs a read or
// two per worker).
func (s *Spawner) scan(ctx context.Context, withMemory bool, keep func(marker) bool) ([]Worker, error) {
	pids, err := allPids()
	if err != nil {
		return nil, fmt.Errorf("read process table: %w", err)
	}
	self := os.Getpid()
	byID := map[[2]string]Worker{}
	// Most workers share a parent (this agent): its marker is read once.
	parents := map[int]marker{}
	defer s.markers.prune(pids)
	in := inspection{keep: keep, withMemory: withMemory, cached: true, parentMarker: func(ppid int) marker {
		m, ok := parents[ppid]
		if !ok {
			m = readMarker(ppid)
			parents[ppid] = m
		}
		return m
	}}
	for _, pid := range pids {
		if pid == self {
			continue
		}
		w, ok := s.inspect(ctx, pid, in)
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

// inspection is what inspect is asked: which markers count, whether RSS is
// wanted, how a parent's marker is read.
type inspection struct {
	keep       func(marker) bool
	withMemory bool
	// cached allows the marker read by an earlier scan for the same
	// process image (see markerCache); verify reads it afresh.
	cached       bool
	parentMarker func(ppid int) marker
}

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
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
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

// verify re-reads w's process right before the agent acts on it and
// reports whether it is still the same worker: same pid, same start time,
// same marker, still its group's leader, still the agent's user.
func (s *Spawner) verify(ctx context.Context, w Worker) error {
	now, ok := s.inspect(ctx, w.PID, inspection{keep: func(m marker) bool {
		return m.hive() == w.HiveID && m.worker() == w.WorkerID
	}})
	if !ok || now.StartTime != w.StartTime {
		return fmt.Errorf("%w: worker %s (pid %d) is gone", ErrWorkerNotFound, w.WorkerID, w.PID)
	}
	return nil
}

// processStartTime is when pid started, in ms since the epoch.
func processStartTime(_ context.Context, pid int) (int64, error) {
	st, ok := readStat(pid)
	if !ok {
		return 0, fmt.Errorf("read /proc/%d/stat: %w", pid, syscall.ESRCH)
	}
	return startMS(st.startTicks), nil
}

// startMS converts a start in clock ticks after boot to ms since the
// epoch, with gopsutil's formula (boot time in whole seconds, then
// startTimeOffsetMS), so start times agree with those recorded by earlier
// agent versions. The stat line is read once for every process of a scan;
// gopsutil read and parsed it again for this one field.
func startMS(ticks uint64) int64 {
	return int64(ticks*1000/clockTicks()+bootTimeMS()) + startTimeOffsetMS()
}

var clockTicks = sync.OnceValue(func() uint64 {
	if n, err := sysconf.Sysconf(sysconf.SC_CLK_TCK); err == nil && n > 0 {
		return uint64(n)
	}
	return 100
})

var bootTimeMS = sync.OnceValue(func() uint64 {
	bt, err := host.BootTime()
	if err != nil {
		return 0
	}
	return bt * 1000
})
