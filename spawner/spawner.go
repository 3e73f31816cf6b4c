// Package spawner is hive-agent's operating-system side: it resolves worker
// binaries, checks devices, starts workers detached with a marker in their
// environment (in a cgroup of their own where it can), finds them again in
// the process table, watches their exits with one epoll set of pidfds, and
// stops them with everything they started. It keeps no registry: the
// process table is the truth, so every method works the same for workers
// started by an earlier run. docs/workers.md describes the model.
package spawner

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rbee/hive-agent/subjects"
)

// Config configures a Spawner.
type Config struct {
	// HiveID is this hive's id; only workers carrying it are ever listed or signalled.
	HiveID string
	// WorkerDirs are searched for worker binaries before PATH.
	WorkerDirs []string
	// LogDir holds one directory per hive with one log file per worker.
	LogDir string
	// PortMin and PortMax bound the ports chosen for spawns that name none.
	PortMin, PortMax int
	// Devices answers whether a device exists here; the zero value probes this machine.
	Devices DeviceProbe
	// OnStart, when set, is called for every worker this Spawner started,
	// right after the process started (its marker is readable by then) and
	// before OnExit can be called for it.
	OnStart func(Worker)
	// LeftoverGrace is how long the children a worker leaves behind when it
	// exits by itself get between SIGTERM and SIGKILL; default 5 s.
	LeftoverGrace time.Duration
	// OnExit, when set, is called once from its own goroutine for every worker
	// this Spawner started, after the worker exited, was reaped and what it
	// left behind was stopped; and likewise for every worker Adopt took on
	// (with Exit.Adopted set).
	OnExit func(Worker, Exit)
	// OnPendingRestart, when set, is called by Adopt for each restart an
	// earlier agent of this hive announced but did not start (it was
	// stopped or killed during the backoff): resumed, or abandoned and why.
	OnPendingRestart func(PendingRestart)
	// RestartBackoff is the wait before a failed worker's first restart;
	// it doubles with each attempt up to MaxRestartBackoff. Default 1 s.
	RestartBackoff time.Duration
	// Containment is how a worker's processes are held together: "auto"
	// (the default: a cgroup v2 group per worker where the agent may create
	// them, else its process group), "cgroup" (New fails when cgroups
	// cannot be used) or "process-group".
	Containment string
	// LockPath is the start lock shared by every agent of this user;
	// default DefaultLockPath(). Agents that name different paths may hand
	// out one port twice.
	LockPath string
	// ExitedTTL is how long Departed lists a worker after it exited;
	// default DefaultExitedTTL.
	ExitedTTL time.Duration
	// Logger receives the spawner's own diagnostics.
	Logger *slog.Logger

	// recordTrust is how long the start lock's record stands in for the
	// process table; default recordTrust (reservations.go). Tests set it.
	recordTrust time.Duration
}

func (c *Config) setDefaults() {
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 9100, 9199
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RestartBackoff == 0 {
		c.RestartBackoff = time.Second
	}
	if c.LeftoverGrace == 0 {
		c.LeftoverGrace = 5 * time.Second
	}
	if c.Containment == "" {
		c.Containment = ContainmentAuto
	}
	if c.LockPath == "" {
		c.LockPath = DefaultLockPath()
	}
	if c.ExitedTTL == 0 {
		c.ExitedTTL = DefaultExitedTTL
	}
	if c.recordTrust == 0 {
		c.recordTrust = recordTrust
	}
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if err := subjects.ValidToken(c.HiveID); err != nil {
		errs = append(errs, fmt.Errorf("hive id %q: %w", c.HiveID, err))
	}
	if c.LogDir == "" {
		errs = append(errs, errors.New("log dir: must be set"))
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMin > c.PortMax {
		errs = append(errs, fmt.Errorf("port range %d-%d: want 1024 <= min <= max <= 65535", c.PortMin, c.PortMax))
	}
	switch c.Containment {
	case ContainmentAuto, ContainmentCgroup, ContainmentProcessGroup:
	default:
		errs = append(errs, fmt.Errorf("containment %q: want auto, cgroup or process-group", c.Containment))
	}
	return errors.Join(errs...)
}

// Spawner starts, finds and stops the workers of one hive. It is safe for
// concurrent use.
type Spawner struct {
	cfg Config
	// startMu serialises the check-then-start section of Start within this
	// Spawner (the start lock file does so between agents), so two
	// concurrent spawns can neither both take one worker id nor one port.
	startMu sync.Mutex
	batch   startBatch // see startbatch.go; guarded by startMu
	// tableReads counts the Starts that read the process table in full
	// rather than the start lock's record (reservations.go).
	tableReads atomic.Int64
	markers    markerCache
	nextPort   int
	euid       int
	cg         cgroups
	// stopping holds the pids Stop is working on, so that the exit
	// handling leaves their leftovers to it. For a watched worker the exit
	// handling removes the entry (see exited), so that a stop that
	// returned before the exit was handled still counts.
	stopping sync.Map

	mu sync.Mutex
	// watched holds the workers whose exit this Spawner waits for, its own
	// children and adopted ones, by pid.
	watched map[int]watched
	// restarts holds the pending restarts by worker id.
	restarts map[string]*pendingRestart
	// closed: Close was called; restarts are left to the next agent.
	closed bool
	// book holds worker states and recent exits (state.go).
	book stateBook
}

// exited forgets a watched worker and reports whether a Stop owns its end.
// One lock orders it against Stop's cleanup (see Stop).
func (s *Spawner) exited(pid int) (stopped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watched, pid)
	_, stopped = s.stopping.LoadAndDelete(pid)
	return stopped
}

// watched is one worker this Spawner waits for.
type watched struct {
	w   Worker
	own bool
	// done is closed once the exit was handled and OnExit returned.
	done chan struct{}
}

// New checks cfg, prepares the start lock's directory, probes cgroups, and
// returns a Spawner.
func New(cfg Config) (*Spawner, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := prepareLockDir(cfg.LockPath); err != nil {
		return nil, err
	}
	s := &Spawner{cfg: cfg, nextPort: cfg.PortMin, euid: os.Geteuid(), watched: map[int]watched{}, restarts: map[string]*pendingRestart{}}
	s.wrapHooks()
	if cfg.Containment != ContainmentProcessGroup {
		cg, err := probeCgroups()
		switch {
		case err == nil:
			s.cg = cg
		case cfg.Containment == ContainmentCgroup:
			return nil, fmt.Errorf("containment cgroup: %w", err)
		default:
			cfg.Logger.Debug("cgroups unusable; containing workers by process group", "reason", err)
		}
	}
	return s, nil
}

// Containment is how this Spawner holds a worker's processes together:
// "cgroup" or "process-group" (Unix), "job-object" (Windows).
func (s *Spawner) Containment() string {
	if s.cg.enabled() {
		return ContainmentCgroup
	}
	return defaultContainment
}

// HiveID is the hive this Spawner manages.
func (s *Spawner) HiveID() string { return s.cfg.HiveID }

// Spec says what worker to start.
type Spec struct {
	WorkerID   string
	ModelID    string
	Device     Device
	BinaryPath string
	// Port is the worker's port; 0 picks a free one in the configured range.
	Port      int
	QueenURL  string
	JobID     string
	CommandID string
	// WorkerType is the worker's catalog type name.
	WorkerType WorkerType
	// Command renders the worker's arguments (after the binary) and the
	// environment it gets beyond what it inherits, once Start has chosen
	// the port; required (Start fails with ErrSpawn without it). See StartEnv
	// for the order.
	Command func(port int) (args, env []string, err error)
	// HealthPath is the path readiness probes; empty: /health.
	HealthPath string
	// ReadyStatus is the health status that means ready; 0: 200.
	ReadyStatus int
	// Restart says whether the worker is started again when it fails.
	Restart RestartPolicy

	attempt int // the restart this start is; 0 for the spawn's own
}

// Worker is one worker process as found in (or just put into) the process table.
type Worker struct {
	HiveID     string
	WorkerID   string
	JobID      string
	CommandID  string
	ModelID    string
	Device     string
	WorkerType WorkerType
	Port       int
	PID        int
	// StartTime is the process start time in ms since the epoch, as the
	// kernel reports it: with PID it identifies the process.
	StartTime  int64
	BinaryPath string
	LogPath    string
	RSSBytes   uint64
	// HealthPath and ReadyStatus say how the worker's readiness is probed;
	// they travel in the marker so an adopted worker keeps them.
	HealthPath  string
	ReadyStatus int
	// Restart is the worker's restart policy and Restarts which restart
	// of its spawn this process is (0: the first start).
	Restart  RestartPolicy
	Restarts int
	// QueenURL is the queen URL it was started with (empty for workers of
	// agents before v1.2): a restart starts it with the same.
	QueenURL string
}

// StartedAt is the process start time.
func (w Worker) StartedAt() time.Time { return time.UnixMilli(w.StartTime).UTC() }

// Exit is how a worker ended.
type Exit struct {
	// Code is the exit status, or -1 when a signal ended the process.
	Code int
	// Signal names the signal that ended it (e.g. SIGKILL), or is empty.
	Signal string
	// RanMS is how long it ran.
	RanMS int64
	// Leftovers counts the processes it left (children in its group, in
	// its cgroup, or carrying its marker) that were still running when it
	// exited by itself, and that the spawner then stopped.
	Leftovers int
	// Adopted is true for a worker started by an earlier run of the agent
	// and taken on by Adopt: the operating system tells only a process's
	// parent how it ended, so Code is -1 and Signal empty.
	Adopted bool
	// Restart is the number of the restart that follows after RestartIn
	// (the worker's restart policy asked for it), or 0 when none does.
	Restart   int
	RestartIn time.Duration
	// SpawnFailed is true when the worker exited while its spawn still
	// waited for it (WaitAlive, WaitReady), which so failed: such a worker
	// is not restarted, whatever its policy.
	SpawnFailed bool
}

func (e Exit) String() string {
	if e.Adopted && e.Signal == "" && e.Code == -1 {
		return "exited (status unknown: started by an earlier run of the agent)"
	}
	if e.Signal != "" {
		return "was killed by " + e.Signal
	}
	return fmt.Sprintf("exited with status %d", e.Code)
}

// Handle is a worker this Spawner started and still reaps.
type Handle struct {
	Worker
	spec Spec
	done chan struct{}
	exit Exit
	// hold is the spawn's claim on the restart policy while it waits
	// (see restart.go).
	hold restartHold
	book *stateBook
}

// Done is closed once the worker exited and was reaped.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Exit is how the worker ended; valid once Done is closed.
func (h *Handle) Exit() Exit { <-h.done; return h.exit }

func exitOf(ps *os.ProcessState, startMS int64) Exit {
	e := Exit{Code: -1, RanMS: time.Now().UnixMilli() - startMS}
	if e.RanMS < 0 {
		e.RanMS = 0
	}
	if ps == nil {
		return e
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = signalName(ws.Signal())
		return e
	}
	e.Code = ps.ExitCode()
	return e
}

func (s *Spawner) pickPort(used map[int]bool) (int, error) {
	n := s.cfg.PortMax - s.cfg.PortMin + 1
	for i := 0; i < n; i++ {
		p := s.cfg.PortMin + (s.nextPort-s.cfg.PortMin+i)%n
		if used[p] || portFree(p) != nil {
			continue
		}
		s.nextPort = p + 1
		return p, nil
	}
	return 0, fmt.Errorf("%w: every port in %d-%d is in use", ErrNoFreePort, s.cfg.PortMin, s.cfg.PortMax)
}

// LogDir is the directory holding this hive's worker logs.
func (s *Spawner) LogDir() string { return filepath.Join(s.cfg.LogDir, s.cfg.HiveID) }

// openLog opens a fresh log for workerID, keeping the previous one as .1.
func (s *Spawner) openLog(workerID string) (string, *os.File, error) {
	dir := s.LogDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", nil, fmt.Errorf("log dir: %w", err)
	}
	p := filepath.Join(dir, workerID+".log")
	// The old .1 goes first: ext4 flushes a file renamed over another one
	// (replace-via-rename), which cost a start about 0.15 ms.
	os.Remove(p + ".1")
	if err := os.Rename(p, p+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("keep previous log: %w", err)
	}
	os.Remove(indexPath(p)) // the new log starts a new index (logindex.go)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		return "", nil, fmt.Errorf("open log: %w", err)
	}
	return p, f, nil
}

// CheckDevice reports whether d exists on this machine (ErrDeviceUnavailable when not).
func (s *Spawner) CheckDevice(d Device) error { return s.cfg.Devices.Check(d) }

// Resolve finds a worker binary: an absolute path as is, a file name in
// the worker directories, then PATH.
func (s *Spawner) Resolve(binary string) (string, error) {
	return ResolveBinary(binary, s.cfg.WorkerDirs)
}
