// Package spawner is hive-agent's operating-system side: it resolves worker
// binaries, checks devices, starts workers detached with a marker in their
// environment, finds them again in the process table, and stops them by
// process group. It keeps no registry: the process table is the truth, so
// every method works the same for workers started by an earlier run.
package spawner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	// Containment is how a worker's processes are held together: "auto"
	// (the default: a cgroup v2 group per worker where the agent may create
	// them, else its process group), "cgroup" (New fails when cgroups
	// cannot be used) or "process-group".
	Containment string
	// LockPath is the start lock shared by every agent of this user;
	// default DefaultLockPath(). Agents that name different paths may hand
	// out one port twice.
	LockPath string
	// Logger receives the spawner's own diagnostics.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 9100, 9199
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
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
	startMu  sync.Mutex
	nextPort int
	euid     int
	cg       cgroups
	// stopping holds the pgids Stop is working on, so that reap leaves
	// their leftovers to it.
	stopping sync.Map

	mu sync.Mutex
	// watched holds the workers whose exit this Spawner waits for, its own
	// children and adopted ones, by pid.
	watched map[int]watched
}

// watched is one worker this Spawner waits for.
type watched struct {
	w   Worker
	own bool
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
	s := &Spawner{cfg: cfg, nextPort: cfg.PortMin, euid: os.Geteuid(), watched: map[int]watched{}}
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
// "cgroup" or "process-group".
func (s *Spawner) Containment() string {
	if s.cg.enabled() {
		return ContainmentCgroup
	}
	return ContainmentProcessGroup
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
	done chan struct{}
	exit Exit
}

// Done is closed once the worker exited and was reaped.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Exit is how the worker ended; valid once Done is closed.
func (h *Handle) Exit() Exit { <-h.done; return h.exit }

// Start starts a worker detached from the agent: its own session and process
// group (and its own cgroup in cgroup mode), stdin from /dev/null, stdout
// and stderr appended to its log file, the marker in its environment and
// none of the agent's NATS_* and HIVE_* settings. It fails with a
// *RunningError when the worker id is running, ErrPortTaken or
// ErrNoFreePort for ports, and ErrSpawn when the operating system refuses
// to start the binary.
//
// Start returns once the worker's marker is readable in the process table
// (or the worker already died), so every later Find, List and Stop, of
// this agent or another, sees it. It holds the start lock of all the
// user's agents from its scan until then.
func (s *Spawner) Start(ctx context.Context, spec Spec) (*Handle, error) {
	if err := subjects.ValidToken(spec.WorkerID); err != nil {
		return nil, fmt.Errorf("worker id %q: %w", spec.WorkerID, err)
	}
	s.startMu.Lock()
	defer s.startMu.Unlock()
	unlock, err := lockStart(ctx, s.cfg.LockPath)
	if err != nil {
		return nil, err
	}
	defer unlock()

	all, err := s.scan(ctx, func(m marker) bool { return true })
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for _, w := range all {
		if w.HiveID == s.cfg.HiveID && w.WorkerID == spec.WorkerID {
			return nil, &RunningError{Worker: w}
		}
		used[w.Port] = true
	}
	port := spec.Port
	if port == 0 {
		if port, err = s.pickPort(used); err != nil {
			return nil, err
		}
	} else if used[port] {
		return nil, fmt.Errorf("%w: port %d belongs to another worker", ErrPortTaken, port)
	} else if err := portFree(port); err != nil {
		return nil, fmt.Errorf("%w: port %d: %v", ErrPortTaken, port, err)
	}

	logPath, logFile, err := s.openLog(spec.WorkerID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSpawn, err)
	}
	defer logFile.Close() // the worker holds its own descriptor

	w := Worker{
		HiveID: s.cfg.HiveID, WorkerID: spec.WorkerID, JobID: spec.JobID, CommandID: spec.CommandID,
		ModelID: spec.ModelID, Device: spec.Device.Raw, WorkerType: spec.Device.Type, Port: port,
		BinaryPath: spec.BinaryPath, LogPath: logPath,
	}
	args := []string{
		"--worker-id", spec.WorkerID, "--model", spec.ModelID, "--device", spec.Device.Raw,
		"--port", strconv.Itoa(port), "--queen-url", spec.QueenURL,
	}
	fmt.Fprintf(logFile, "--- hive-agent %s: starting worker %s of hive %s (job %s, command %s): %s %s\n",
		time.Now().UTC().Format(time.RFC3339Nano), w.WorkerID, w.HiveID, w.JobID, w.CommandID,
		spec.BinaryPath, strings.Join(args, " "))
	cmd, cgroup, err := s.exec(w, args, logFile)
	if err != nil {
		fmt.Fprintf(logFile, "--- hive-agent: start failed: %v\n", err)
		return nil, fmt.Errorf("%w: start %s: %v", ErrSpawn, spec.BinaryPath, err)
	}
	w.PID = cmd.Process.Pid
	// The child is not reaped before cmd.Wait, so its pid stays its own.
	if st, err := processStartTime(ctx, w.PID); err == nil {
		w.StartTime = st
	} else {
		w.StartTime = time.Now().UnixMilli()
	}
	pidfd, err := pidfdOpen(w.PID)
	if err != nil {
		pidfd = -1
	}
	s.mu.Lock()
	s.watched[w.PID] = watched{w: w, own: true}
	s.mu.Unlock()
	s.waitMarker(w, pidfd)
	h := &Handle{Worker: w, done: make(chan struct{})}
	if s.cfg.OnStart != nil {
		s.cfg.OnStart(w)
	}
	processWatcher().add(&watch{pid: w.PID, fd: pidfd, gone: childPoller(w.PID), fire: func() { s.reap(cmd, h, cgroup) }})
	return h, nil
}

// exec starts the worker's process, in its cgroup when there is one. When
// the kernel refuses to start it in the cgroup (clone3 missing or denied),
// it starts it without one, contained by its process group.
func (s *Spawner) exec(w Worker, args []string, logFile *os.File) (*exec.Cmd, string, error) {
	newCmd := func() *exec.Cmd {
		cmd := exec.Command(w.BinaryPath, args...)
		cmd.Env = append(workerEnv(os.Environ()), markerEnv(w)...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd
	}
	var cgErr error
	if s.cg.enabled() {
		dir, fd, err := s.cg.prepare(w.HiveID, w.WorkerID)
		if err == nil {
			cmd := newCmd()
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
			err = cmd.Start()
			syscall.Close(fd)
			if err == nil {
				return cmd, dir, nil
			}
			removeCgroup(dir)
		}
		cgErr = err
	}
	// A binary that cannot run fails here again; anything else was the
	// cgroup's fault.
	cmd := newCmd()
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	if cgErr != nil {
		s.cfg.Logger.Warn("cannot start worker in its cgroup; containing it by process group",
			"worker_id", w.WorkerID, "err", cgErr)
	}
	return cmd, "", nil
}

// markerWait bounds how long Start waits for a new worker's marker to
// become readable; it takes microseconds, the kernel fills in a process's
// environment right after the exec that Start waited for.
const markerWait = 2 * time.Second

// waitMarker waits until w's marker can be read from /proc, or w died.
// Should the bound pass, Find and List still see w through watched.
func (s *Spawner) waitMarker(w Worker, pidfd int) {
	deadline := time.Now().Add(markerWait)
	wait := 20 * time.Microsecond
	for {
		if readMarker(w.PID).is(w.HiveID, w.WorkerID) {
			return
		}
		if pidfd >= 0 && pidfdExited(pidfd, 0) || !processAlive(w.PID) {
			return
		}
		if time.Now().After(deadline) {
			s.cfg.Logger.Warn("marker of a new worker not readable yet", "worker_id", w.WorkerID, "pid", w.PID)
			return
		}
		time.Sleep(wait)
		wait = min(wait*2, 5*time.Millisecond)
	}
}

func processAlive(pid int) bool {
	st, ok := readStat(pid)
	return ok && !st.zombie
}

// reap runs once a started worker exited: it collects its status so it
// never lingers as a zombie, stops what it left behind, and reports its end.
func (s *Spawner) reap(cmd *exec.Cmd, h *Handle, cgroup string) {
	err := cmd.Wait()
	h.exit = exitOf(cmd.ProcessState, h.StartTime)
	if err != nil && cmd.ProcessState == nil {
		s.cfg.Logger.Error("wait for worker", "worker_id", h.WorkerID, "pid", h.PID, "err", err)
	}
	s.mu.Lock()
	delete(s.watched, h.PID)
	s.mu.Unlock()
	if _, stopping := s.stopping.Load(h.PID); !stopping {
		h.exit.Leftovers = s.stopLeftovers(h.Worker, cgroup)
	} else {
		removeCgroup(cgroup)
	}
	// OnExit first: a spawn still waiting on this worker then narrates its
	// end only after worker_exited was published.
	if s.cfg.OnExit != nil {
		s.cfg.OnExit(h.Worker, h.exit)
	}
	close(h.done)
}

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
	if err := os.Rename(p, p+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("keep previous log: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		return "", nil, fmt.Errorf("open log: %w", err)
	}
	return p, f, nil
}

// CheckDevice reports whether d exists on this machine (ErrDeviceUnavailable when not).
func (s *Spawner) CheckDevice(d Device) error { return s.cfg.Devices.Check(d) }

// Resolve finds the binary for t in the worker directories, then PATH.
func (s *Spawner) Resolve(t WorkerType) (string, error) { return Resolve(t, s.cfg.WorkerDirs) }

// LogTail returns the last n lines of the log at path.
func (s *Spawner) LogTail(path string, n int) ([]string, error) { return LogTail(path, n) }
