package spawner

import (
	"slices"
	"sync"
	"time"
)

// State is what the agent sees of a worker now (PROTOCOL v1.2 "Worker state").
type State string

// Worker states.
const (
	// StateStarting: started, not yet past its spawn's wait.
	StateStarting State = "starting"
	// StateLoading: a wait for ready is in progress.
	StateLoading State = "loading"
	// StateRunning: past its wait; not health-checked since (or no checks).
	StateRunning State = "running"
	// StateReady: the last health check answered the ready status.
	StateReady State = "ready"
	// StateUnhealthy: the last health_failures checks in a row failed.
	StateUnhealthy State = "unhealthy"
	// StateStopping: a delete (or restart) is stopping it.
	StateStopping State = "stopping"
	// StateBackoff: it exited and its restart is pending.
	StateBackoff State = "backoff"
	// StateExited: it exited within the exited TTL and nothing restarts it.
	StateExited State = "exited"
)

// DefaultExitedTTL is how long an exited worker stays listed with "all".
const DefaultExitedTTL = 15 * time.Minute

// Departed is a worker that is no longer running: it exited within the
// exited TTL, or it waits for its restart (State backoff, RestartAt set).
// It holds neither its id nor its port.
type Departed struct {
	Worker
	Exit     Exit
	ExitedAt time.Time
	State    State
	// RestartAt is when its pending restart starts; zero unless backoff.
	RestartAt time.Time
}

// stateBook is the little a Spawner remembers beyond the process table:
// the phase of the workers it started (by pid) and the recent exits (by
// worker id, one each: the last). The process table stays the truth for
// what runs; this only colours it.
type stateBook struct {
	mu    sync.Mutex
	phase map[int]State
	exits map[string]Departed
}

func (b *stateBook) init() {
	b.phase = map[int]State{}
	b.exits = map[string]Departed{}
}

func (b *stateBook) set(pid int, st State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.phase[pid] = st
}

// settle moves pid from starting or loading to st.
func (b *stateBook) settle(pid int, st State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.phase[pid]; ok && (cur == StateStarting || cur == StateLoading) {
		b.phase[pid] = st
	}
}

func (b *stateBook) started(w Worker) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.phase[w.PID] = StateStarting
	delete(b.exits, w.WorkerID) // one row per id: the running one
}

// exited records an exit, and forgets the exits older than ttl that no
// restart follows (so the book stays small without lists to prune it).
func (b *stateBook) exited(w Worker, e Exit, at time.Time, ttl time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.phase, w.PID)
	for id, d := range b.exits {
		if at.Sub(d.ExitedAt) > ttl && d.Exit.Restart == 0 {
			delete(b.exits, id)
		}
	}
	b.exits[w.WorkerID] = Departed{Worker: w, Exit: e, ExitedAt: at}
}

// wrapHooks records starts and exits in the book before the configured
// hooks see them, so a list made from an OnExit hook already shows the exit.
func (s *Spawner) wrapHooks() {
	s.book.init()
	onStart, onExit := s.cfg.OnStart, s.cfg.OnExit
	s.cfg.OnStart = func(w Worker) {
		s.book.started(w)
		if onStart != nil {
			onStart(w)
		}
	}
	s.cfg.OnExit = func(w Worker, e Exit) {
		s.book.exited(w, e, time.Now(), s.cfg.ExitedTTL)
		if onExit != nil {
			onExit(w, e)
		}
	}
}

// StateOf is the state of a worker List or Find returned: stopping while
// a Stop works on it, else what its spawn's wait or the health checks last
// said, else running.
func (s *Spawner) StateOf(w Worker) State {
	if _, ok := s.stopping.Load(w.PID); ok {
		return StateStopping
	}
	s.book.mu.Lock()
	defer s.book.mu.Unlock()
	if st, ok := s.book.phase[w.PID]; ok {
		return st
	}
	return StateRunning
}

// SetHealth records a health check's verdict on a running worker: ready
// or unhealthy. A worker still in its spawn's wait keeps that state.
func (s *Spawner) SetHealth(pid int, st State) {
	s.book.mu.Lock()
	defer s.book.mu.Unlock()
	if cur := s.book.phase[pid]; cur == StateStarting || cur == StateLoading {
		return
	}
	s.book.phase[pid] = st
}

// Departed lists the workers that exited within the exited TTL (none of
// whose id runs again) and those waiting for a restart, in exit order. Older
// exits are forgotten here.
func (s *Spawner) Departed() []Departed {
	ttl := s.cfg.ExitedTTL
	now := time.Now()
	s.mu.Lock()
	pending := map[string]bool{}
	for id, p := range s.restarts {
		pending[id] = !p.cancelled
	}
	s.mu.Unlock()
	s.book.mu.Lock()
	defer s.book.mu.Unlock()
	out := make([]Departed, 0, len(s.book.exits))
	for id, d := range s.book.exits {
		d.State = StateExited
		if pending[id] && d.Exit.Restart > 0 {
			d.State, d.RestartAt = StateBackoff, d.ExitedAt.Add(d.Exit.RestartIn)
		} else if now.Sub(d.ExitedAt) > ttl {
			delete(s.book.exits, id)
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Departed) int { return a.ExitedAt.Compare(b.ExitedAt) })
	return out
}

// Watched lists the workers this Spawner watches (started or adopted and
// not yet seen to exit), without reading the process table.
func (s *Spawner) Watched() []Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Worker, 0, len(s.watched))
	for _, x := range s.watched {
		out = append(out, x.w)
	}
	return out
}

// Settle marks a started worker as past its spawn's wait (running),
// unless a health check has spoken since. The spawn command calls it
// when it stops waiting, whatever the outcome.
func (h *Handle) Settle() {
	if h.book != nil {
		h.book.settle(h.PID, StateRunning)
	}
}

func (h *Handle) setPhase(st State) {
	if h.book != nil {
		h.book.set(h.PID, st)
	}
}

// WithRestarts returns spec as the n-th restart of its worker: the worker
// it starts reports Restarts n (a restart command or a restart on
// unhealthy counts one more than the worker it replaces).
func (spec Spec) WithRestarts(n int) Spec {
	spec.attempt = n
	return spec
}
