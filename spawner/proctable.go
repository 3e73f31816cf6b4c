package spawner

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/shirou/gopsutil/v4/process"
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
	ws, err := s.scan(ctx, true, func(m marker) bool { return m.is(s.cfg.HiveID, workerID) })
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
	defer s.markers.prune(pids)
	byID := map[[2]string]Worker{}
	for _, w := range s.inspectAll(ctx, pids, keep, withMemory) {
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

// scanShare sets how many goroutines a scan reads on: one per scanShare
// processes (rounded up), at most one per CPU; a table of up to
// scanShare processes is read on one.
const scanShare = 128

// inspectAll inspects pids (all but the agent itself) and returns the
// workers among them in pids' order. A large table is read by one
// goroutine per CPU, each on a contiguous share: the reads are system
// calls, and a list of 500 workers spends most of its time in them.
func (s *Spawner) inspectAll(ctx context.Context, pids []int, keep func(marker) bool, withMemory bool) []Worker {
	self := os.Getpid()
	read := func(share []int) []Worker {
		in := inspection{keep: keep, withMemory: withMemory, cached: true, parentMarker: parentMarkers()}
		var ws []Worker
		for _, pid := range share {
			if pid == self {
				continue
			}
			if w, ok := s.inspect(ctx, pid, in); ok {
				ws = append(ws, w)
			}
		}
		return ws
	}
	n := min(runtime.GOMAXPROCS(0), (len(pids)+scanShare-1)/scanShare)
	if n <= 1 {
		return read(pids)
	}
	found := make([][]Worker, n)
	var wg sync.WaitGroup
	for i := range n {
		share := pids[i*len(pids)/n : (i+1)*len(pids)/n]
		wg.Go(func() { found[i] = read(share) })
	}
	wg.Wait()
	return slices.Concat(found...)
}

// parentMarkers reads a parent's marker once for all the workers of one
// pass over processes: most share a parent (this agent).
func parentMarkers() func(ppid int) marker {
	parents := map[int]marker{}
	return func(ppid int) marker {
		m, ok := parents[ppid]
		if !ok {
			m = readMarker(ppid)
			parents[ppid] = m
		}
		return m
	}
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

// verify re-reads w's process right before the agent acts on it and
// reports whether it is still the same worker: same pid, same start time,
// same marker, still its group's leader, still the agent's user.
func (s *Spawner) verify(ctx context.Context, w Worker) error {
	now, ok := s.inspect(ctx, w.PID, inspection{keep: func(m marker) bool {
		return m.is(w.HiveID, w.WorkerID)
	}})
	if !ok || now.StartTime != w.StartTime {
		return fmt.Errorf("%w: worker %s (pid %d) is gone", ErrWorkerNotFound, w.WorkerID, w.PID)
	}
	return nil
}
