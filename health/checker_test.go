package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee/hive-agent/spawner"
)

// server is a health endpoint whose answer the test switches.
func server(t *testing.T) (port int, status *atomic.Int32) {
	t.Helper()
	status = &atomic.Int32{}
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ = strconv.Atoi(p)
	return port, status
}

type recorder struct {
	mu      sync.Mutex
	results []Result
	changed chan struct{}
}

func (r *recorder) add(res Result) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) waitFor(t *testing.T, what string, done func([]Result) bool) []Result {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		rs := append([]Result(nil), r.results...)
		r.mu.Unlock()
		if done(rs) {
			return rs
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("%s: not within 20s; %d results", what, len(rs))
		}
	}
}

func start(t *testing.T, ws []spawner.Worker, p Policy, rec *recorder) {
	t.Helper()
	c, err := New(Config{Workers: func() []spawner.Worker { return ws }, PolicyOf: func(spawner.Worker) Policy { return p },
		OnResult: rec.add, Pool: 4, SyncEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Failures in a row turn a worker unhealthy once; an answer turns it
// healthy once, with the time the failures began.
func TestChecker_Transitions(t *testing.T) {
	port, status := server(t)
	rec := &recorder{changed: make(chan struct{}, 1)}
	w := spawner.Worker{WorkerID: "w", PID: 1, Port: port, HealthPath: "/health", ReadyStatus: 200}
	status.Store(http.StatusServiceUnavailable)
	start(t, []spawner.Worker{w}, Policy{Interval: 10 * time.Millisecond, Timeout: time.Second, Failures: 3, OnUnhealthy: OnUnhealthyEvent}, rec)
	rs := rec.waitFor(t, "unhealthy", func(rs []Result) bool { return len(rs) >= 4 })
	for i, r := range rs[:4] {
		want := ""
		if i == 2 {
			want = TurnedUnhealthy
		}
		if r.OK || r.Failures != i+1 || r.Turned != want || r.LastError == "" {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	since := rs[2].Since
	status.Store(http.StatusOK)
	rs = rec.waitFor(t, "healthy", func(rs []Result) bool { return len(rs) > 0 && rs[len(rs)-1].OK })
	var healthy []Result
	for _, r := range rs {
		if r.Turned == TurnedHealthy {
			healthy = append(healthy, r)
		}
	}
	if len(healthy) != 1 || !healthy[0].Since.Equal(since) {
		t.Errorf("healthy turns %+v, want one since %v", healthy, since)
	}
}

// Checking many workers costs the pool's goroutines, not one per worker.
func TestChecker_GoroutinesDoNotGrowWithWorkers(t *testing.T) {
	port, _ := server(t)
	before := runtime.NumGoroutine()
	ws := make([]spawner.Worker, 300)
	for i := range ws {
		ws[i] = spawner.Worker{WorkerID: "w" + strconv.Itoa(i), PID: 1000 + i, Port: port, HealthPath: "/h", ReadyStatus: 200}
	}
	rec := &recorder{changed: make(chan struct{}, 1)}
	start(t, ws, Policy{Interval: 20 * time.Millisecond, Timeout: time.Second, Failures: 3, OnUnhealthy: OnUnhealthyEvent}, rec)
	seen := map[int]bool{}
	rec.waitFor(t, "every worker checked twice", func(rs []Result) bool {
		n := map[int]int{}
		for _, r := range rs {
			n[r.Worker.PID]++
			if n[r.Worker.PID] >= 2 {
				seen[r.Worker.PID] = true
			}
		}
		return len(seen) == len(ws)
	})
	// The scheduler, 4 checkers, and what net/http and httptest hold for
	// connections in flight: far fewer than 300.
	if got := runtime.NumGoroutine() - before; got > 60 {
		t.Errorf("%d goroutines more while checking %d workers, want a bounded pool", got, len(ws))
	}
}

// A worker that goes away is dropped at the next sync; a worker with
// interval 0 is never checked.
func TestChecker_IntervalZeroIsOff(t *testing.T) {
	port, _ := server(t)
	rec := &recorder{changed: make(chan struct{}, 1)}
	on := spawner.Worker{WorkerID: "on", PID: 1, Port: port}
	off := spawner.Worker{WorkerID: "off", PID: 2, Port: port}
	c, err := New(Config{Workers: func() []spawner.Worker { return []spawner.Worker{on, off} },
		PolicyOf: func(w spawner.Worker) Policy {
			if w.WorkerID == "off" {
				return Policy{}
			}
			return Policy{Interval: 10 * time.Millisecond, Timeout: time.Second, Failures: 1}
		}, OnResult: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	rs := rec.waitFor(t, "ten checks", func(rs []Result) bool { return len(rs) >= 10 })
	for _, r := range rs {
		if r.Worker.WorkerID == "off" {
			t.Fatalf("worker with interval 0 was checked")
		}
	}
}
