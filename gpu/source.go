package gpu

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// Defaults of a Source.
const (
	DefaultTimeout = 3 * time.Second
	DefaultTTL     = time.Second
	DefaultErrTTL  = 10 * time.Second
)

// ErrNoNvidiaSMI is a machine without nvidia-smi on the PATH.
var ErrNoNvidiaSMI = errors.New("no nvidia-smi on the PATH")

// Snapshot is what one round of nvidia-smi said.
type Snapshot struct {
	// GPUs is every GPU of the host, by host index.
	GPUs []GPU
	// Apps is every compute process on any GPU; AppsErr says why it is
	// unknown, when it is.
	Apps    []App
	AppsErr error
	// Err says why GPUs is unknown, when it is.
	Err error
	// At is when the round started.
	At time.Time
	// From names what listed the GPUs: "nvidia-smi --query-gpu" or
	// "nvidia-smi -L" (no memory figures), with the command as configured.
	From string
}

// AppsOn returns the compute processes on the GPU with this uuid.
func (s Snapshot) AppsOn(uuid string) []App {
	var out []App
	for _, a := range s.Apps {
		if a.GPUUUID == uuid {
			out = append(out, a)
		}
	}
	return out
}

// SourceConfig configures a Source.
type SourceConfig struct {
	// Command is the nvidia-smi to run; default "nvidia-smi", looked up
	// on the PATH at each run (so a test's fake placed first is used).
	Command string
	// Timeout bounds each run (default 3s); TTL is how long an answer is
	// reused (default 1s); ErrTTL how long a failure is (default 10s), so
	// a wedged driver costs one Timeout per ErrTTL, not one per caller.
	Timeout, TTL, ErrTTL time.Duration
}

// Source runs nvidia-smi and caches its answers. At most one round runs at
// a time; callers arriving meanwhile share it. Safe for concurrent use.
type Source struct {
	cfg     SourceConfig
	mu      sync.Mutex
	last    Snapshot
	pending chan struct{} // closed when the round in progress ends
	rounds  int
}

// NewSource returns a Source; zero fields of cfg take the defaults.
func NewSource(cfg SourceConfig) *Source {
	if cfg.Command == "" {
		cfg.Command = "nvidia-smi"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.ErrTTL <= 0 {
		cfg.ErrTTL = DefaultErrTTL
	}
	return &Source{cfg: cfg}
}

// Timeout is the bound of one run of nvidia-smi.
func (s *Source) Timeout() time.Duration { return s.cfg.Timeout }

// Snapshot returns an answer no older than the TTL (the ErrTTL for a
// failure), running nvidia-smi when there is none. A ctx that ends first
// returns the last answer and ctx's error.
func (s *Source) Snapshot(ctx context.Context) (Snapshot, error) {
	return s.get(ctx, time.Time{})
}

// Fresh returns an answer that nvidia-smi gave after this call began.
func (s *Source) Fresh(ctx context.Context) (Snapshot, error) {
	return s.get(ctx, time.Now())
}

// Last returns the last answer, however old, without running nvidia-smi.
func (s *Source) Last() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Rounds counts the rounds of nvidia-smi run so far.
func (s *Source) Rounds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rounds
}

func (s *Source) get(ctx context.Context, after time.Time) (Snapshot, error) {
	for {
		s.mu.Lock()
		last := s.last
		ttl := s.cfg.TTL
		if last.Err != nil {
			ttl = s.cfg.ErrTTL
		}
		usable := !last.At.IsZero() && time.Since(last.At) < ttl
		if !after.IsZero() {
			usable = !last.At.IsZero() && !last.At.Before(after)
		}
		if usable {
			s.mu.Unlock()
			return last, last.Err
		}
		wait := s.pending
		if wait == nil {
			wait = make(chan struct{})
			s.pending = wait
			s.rounds++
			// Not bound to ctx: the round is bounded by the timeout, and
			// other callers may be waiting on it.
			go s.round(wait)
		}
		s.mu.Unlock()
		select {
		case <-wait:
			// A round that began before `after` does not count: loop.
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}

func (s *Source) round(done chan struct{}) {
	snap := s.query(context.Background())
	s.mu.Lock()
	s.last = snap
	s.pending = nil
	s.mu.Unlock()
	close(done)
}

func (s *Source) query(ctx context.Context) Snapshot {
	snap := Snapshot{At: time.Now()}
	bin, err := exec.LookPath(s.cfg.Command)
	if err != nil {
		snap.Err = fmt.Errorf("%w: %v", ErrNoNvidiaSMI, err)
		return snap
	}
	var wg sync.WaitGroup
	var appsOut string
	wg.Go(func() {
		appsOut, snap.AppsErr = run(ctx, bin, QueryAppsArgs, s.cfg.Timeout)
	})
	out, err := run(ctx, bin, QueryGPUArgs, s.cfg.Timeout)
	if err == nil {
		snap.GPUs, err = ParseGPUs(out)
		snap.From = s.cfg.Command + " --query-gpu"
	}
	// A driver without the query (or a fake that knows only -L) still
	// lists its GPUs; a timeout is not retried.
	if err != nil && !errors.Is(err, ErrTimeout) {
		if l, lerr := run(ctx, bin, ListArgs, s.cfg.Timeout); lerr == nil {
			snap.GPUs, err = ParseList(l), nil
			snap.From = s.cfg.Command + " -L"
		}
	}
	snap.Err = err
	wg.Wait()
	if snap.AppsErr == nil {
		snap.Apps, snap.AppsErr = ParseApps(appsOut)
	}
	return snap
}
