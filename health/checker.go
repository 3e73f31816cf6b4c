package health

import (
	"container/heap"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rbee/hive-agent/spawner"
)

// Result is the outcome of one check of one worker.
type Result struct {
	Worker spawner.Worker
	Policy Policy
	OK     bool
	// Failures counts the failed checks in a row (0 when OK).
	Failures int
	// LastError describes the last failure (status, timeout, refused).
	LastError string
	// Since is when the current run of failures began (the first failure);
	// on a turn to healthy, when the worker had turned unhealthy.
	Since time.Time
	// Turned is "unhealthy" when this check made the worker unhealthy,
	// "healthy" when it answered after being unhealthy, else empty.
	Turned string
}

// Transitions in Result.Turned.
const (
	TurnedUnhealthy = "unhealthy"
	TurnedHealthy   = "healthy"
)

// Config configures a Checker.
type Config struct {
	// Workers lists the workers that run now; it is called once per
	// SyncEvery and must be cheap (spawner.Watched reads no /proc).
	Workers func() []spawner.Worker
	// PolicyOf is the policy of a worker (its type's, or the defaults).
	PolicyOf func(spawner.Worker) Policy
	// Skip reports whether a worker is not to be checked now (still in its
	// spawn's wait, or being stopped); it is asked again an interval later.
	Skip func(spawner.Worker) bool
	// OnResult gets every check's outcome, in order, from the scheduling
	// goroutine: it must not block (start a restart in a goroutine).
	OnResult func(Result)
	// Pool is how many checks run at once; default 8.
	Pool int
	// SyncEvery is how often Workers is read; default 1 s.
	SyncEvery time.Duration
}

// Checker schedules the health checks of every running worker.
type Checker struct {
	cfg    Config
	client *http.Client
}

// New returns a Checker; Run starts it.
func New(cfg Config) (*Checker, error) {
	if cfg.Workers == nil || cfg.PolicyOf == nil || cfg.OnResult == nil {
		return nil, fmt.Errorf("health checker: Workers, PolicyOf and OnResult must be set")
	}
	if cfg.Pool <= 0 {
		cfg.Pool = 8
	}
	if cfg.SyncEvery <= 0 {
		cfg.SyncEvery = time.Second
	}
	if cfg.Skip == nil {
		cfg.Skip = func(spawner.Worker) bool { return false }
	}
	// No keep-alive: an idle connection per worker would hold two
	// goroutines each between checks.
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	return &Checker{cfg: cfg, client: &http.Client{Transport: tr}}, nil
}

// entry is one worker being checked.
type entry struct {
	w        spawner.Worker
	due      time.Time
	index    int // in the heap; -1 when out of it
	inFlight bool
	gone     bool
	failures int
	since    time.Time
	lastErr  string
	sick     bool
}

func keyOf(w spawner.Worker) string {
	return strconv.Itoa(w.PID) + "/" + strconv.FormatInt(w.StartTime, 10)
}

// Run checks workers until ctx ends: one goroutine schedules, Pool
// goroutines check.
func (c *Checker) Run(ctx context.Context) {
	jobs := make(chan *job)
	done := make(chan *job)
	for range c.cfg.Pool {
		go func() {
			for j := range jobs {
				j.ok, j.err = c.check(ctx, j.url, j.status, j.policy.Timeout)
				select {
				case done <- j:
				case <-ctx.Done():
				}
			}
		}()
	}
	defer close(jobs)
	s := scheduler{byKey: map[string]*entry{}}
	sync := time.NewTicker(c.cfg.SyncEvery)
	defer sync.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var ready []*job // due, waiting for a free checker
	s.sync(c.cfg.Workers(), c.cfg.PolicyOf, time.Now())
	for {
		var send chan *job
		var head *job
		if len(ready) > 0 {
			send, head = jobs, ready[0]
		}
		timer.Reset(s.wait(time.Now()))
		select {
		case <-ctx.Done():
			return
		case <-sync.C:
			s.sync(c.cfg.Workers(), c.cfg.PolicyOf, time.Now())
		case <-timer.C:
		case send <- head:
			ready = ready[1:]
		case j := <-done:
			c.finish(&s, j, time.Now())
		}
		for _, e := range s.due(time.Now()) {
			p := c.cfg.PolicyOf(e.w)
			if c.cfg.Skip(e.w) {
				s.schedule(e, time.Now().Add(p.Interval))
				continue
			}
			e.inFlight = true
			ready = append(ready, &job{e: e, url: e.w.HealthURL(), status: e.w.ReadyStatus, policy: p})
		}
	}
}

// job is one check handed to the pool.
type job struct {
	e      *entry
	url    string
	status int
	policy Policy
	ok     bool
	err    string
}

// finish records a check's outcome, reports it and schedules the next.
func (c *Checker) finish(s *scheduler, j *job, now time.Time) {
	e := j.e
	e.inFlight = false
	if e.gone {
		return
	}
	r := Result{Worker: e.w, Policy: j.policy, OK: j.ok}
	if j.ok {
		if e.sick {
			r.Turned, r.Since = TurnedHealthy, e.since
		}
		e.failures, e.sick, e.lastErr = 0, false, ""
	} else {
		if e.failures == 0 {
			e.since = now
		}
		e.failures++
		e.lastErr = j.err
		if !e.sick && e.failures >= j.policy.Failures {
			e.sick, r.Turned = true, TurnedUnhealthy
		}
		r.Failures, r.LastError, r.Since = e.failures, e.lastErr, e.since
	}
	c.cfg.OnResult(r)
	s.schedule(e, now.Add(j.policy.Interval))
}

// check is one HTTP GET: the ready status is a pass; another status, a
// timeout or a refused connection a failure.
func (c *Checker) check(ctx context.Context, url string, status int, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Sprintf("no answer from %s within %s", url, timeout)
		}
		return false, err.Error()
	}
	resp.Body.Close()
	if status == 0 {
		status = http.StatusOK
	}
	if resp.StatusCode != status {
		return false, fmt.Sprintf("%s answered %s, want %d", url, resp.Status, status)
	}
	return true, ""
}

// scheduler is a min-heap of entries by due time.
type scheduler struct {
	h     entryHeap
	byKey map[string]*entry
}

// sync adds the workers that run now and drops those that are gone.
func (s *scheduler) sync(ws []spawner.Worker, policyOf func(spawner.Worker) Policy, now time.Time) {
	seen := make(map[string]bool, len(ws))
	for _, w := range ws {
		k := keyOf(w)
		seen[k] = true
		if _, ok := s.byKey[k]; ok {
			continue
		}
		p := policyOf(w)
		if p.Interval <= 0 {
			continue // off for this worker; looked at again next sync
		}
		e := &entry{w: w, index: -1}
		s.byKey[k] = e
		s.schedule(e, now.Add(p.Interval))
	}
	for k, e := range s.byKey {
		if !seen[k] {
			e.gone = true
			if e.index >= 0 {
				heap.Remove(&s.h, e.index)
			}
			delete(s.byKey, k)
		}
	}
}

func (s *scheduler) schedule(e *entry, due time.Time) {
	if e.gone {
		return
	}
	e.due = due
	if e.index >= 0 {
		heap.Fix(&s.h, e.index)
		return
	}
	heap.Push(&s.h, e)
}

// due pops the entries whose time has come.
func (s *scheduler) due(now time.Time) []*entry {
	var out []*entry
	for len(s.h) > 0 && !s.h[0].due.After(now) {
		out = append(out, heap.Pop(&s.h).(*entry))
	}
	return out
}

// wait is how long until the next entry is due (an hour when none is).
func (s *scheduler) wait(now time.Time) time.Duration {
	if len(s.h) == 0 {
		return time.Hour
	}
	return max(0, s.h[0].due.Sub(now))
}

type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *entryHeap) Push(x any)        { e := x.(*entry); e.index = len(*h); *h = append(*h, e) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
