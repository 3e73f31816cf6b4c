package spawner

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/rbee/hive-agent/subjects"
)

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
// user's agents from its scan until then (and Starts queued behind it in
// this Spawner share that hold and that scan, see startBatch).
func (s *Spawner) Start(ctx context.Context, spec Spec) (*Handle, error) {
	if err := subjects.ValidToken(spec.WorkerID); err != nil {
		return nil, fmt.Errorf("worker id %q: %w", spec.WorkerID, err)
	}
	all, err := s.enterStart(ctx)
	if err != nil {
		return nil, err
	}
	var started *Worker
	defer func() { s.leaveStart(started) }()
	used := map[int]bool{}
	for _, w := range all {
		if w.HiveID == s.cfg.HiveID && w.WorkerID == spec.WorkerID && s.stillRunning(ctx, w) {
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
		ModelID: spec.ModelID, Device: spec.Device.Raw, WorkerType: spec.WorkerType, Port: port,
		BinaryPath: spec.BinaryPath, LogPath: logPath, HealthPath: spec.HealthPath, ReadyStatus: spec.ReadyStatus,
		Restart: spec.Restart, Restarts: spec.attempt, QueenURL: spec.QueenURL,
	}
	if w.WorkerType == "" {
		w.WorkerType = spec.Device.Type
	}
	if w.HealthPath == "" {
		w.HealthPath = "/health"
	}
	if w.ReadyStatus == 0 {
		w.ReadyStatus = http.StatusOK
	}
	args, env, err := spec.command(port)
	if err != nil {
		fmt.Fprintf(logFile, "--- hive-agent: cannot build the command of worker %s: %v\n", w.WorkerID, err)
		return nil, fmt.Errorf("%w: %v", ErrSpawn, err)
	}
	fmt.Fprintf(logFile, "--- hive-agent %s: starting worker %s of hive %s (job %s, command %s): %s %s\n",
		time.Now().UTC().Format(time.RFC3339Nano), w.WorkerID, w.HiveID, w.JobID, w.CommandID,
		spec.BinaryPath, shellWords(args))
	cmd, cgroup, err := s.exec(w, args, StartEnv(os.Environ(), env, w), logFile)
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
	h := &Handle{Worker: w, spec: spec, done: make(chan struct{}), book: &s.book}
	s.watched[w.PID] = watched{w: w, own: true, done: h.done}
	s.mu.Unlock()
	s.waitMarker(w, pidfd)
	started = &w
	if s.cfg.OnStart != nil {
		s.cfg.OnStart(w)
	}
	processWatcher().add(&watch{pid: w.PID, fd: pidfd, gone: childPoller(w.PID), fire: func() { s.reap(cmd, h, cgroup) }})
	return h, nil
}

// exec starts the worker's process, in its cgroup when there is one. When
// the kernel refuses to start it in the cgroup (clone3 missing or denied),
// it starts it without one, contained by its process group.
func (s *Spawner) exec(w Worker, args, env []string, logFile *os.File) (*exec.Cmd, string, error) {
	newCmd := func() *exec.Cmd {
		cmd := exec.Command(w.BinaryPath, args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd
	}
	var cgErr error
	if s.cg.enabled() {
		dir, fd, err := s.cg.prepare(w.HiveID, w.WorkerID)
		if err == nil {
			cmd := newCmd()
			startInCgroup(cmd.SysProcAttr, fd)
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
	// Before anything is reported: a spawn's wait that has not yet
	// succeeded now reports the exit, and the worker is not restarted.
	h.exit.SpawnFailed = h.hold.exited()
	attempt, delay, restart := 0, time.Duration(0), false
	if !s.exited(h.PID) {
		h.exit.Leftovers = s.stopLeftovers(h.Worker, cgroup)
		attempt, delay, restart = s.planRestart(h)
		h.exit.Restart, h.exit.RestartIn = attempt, delay
	} else {
		removeCgroup(cgroup)
	}
	// OnExit first: a spawn still waiting on this worker then narrates its
	// end only after worker_exited was published.
	if s.cfg.OnExit != nil {
		s.cfg.OnExit(h.Worker, h.exit)
	}
	close(h.done)
	if restart {
		s.scheduleRestart(h, attempt, delay)
	}
}
