package spawner

import (
	"context"
	"fmt"
	"net/http"
	"os"
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
	if w, ok := s.runningInItsCgroup(ctx, spec.WorkerID); ok {
		s.cfg.Logger.Error("a running worker was missing from the start's view of the workers; refusing to start its id again",
			"worker_id", w.WorkerID, "pid", w.PID)
		return nil, &RunningError{Worker: w}
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
	h, err := s.launch(ctx, w, spec, StartEnv(os.Environ(), env, w), args, logFile)
	if err != nil {
		fmt.Fprintf(logFile, "--- hive-agent: start failed: %v\n", err)
		return nil, fmt.Errorf("%w: start %s: %v", ErrSpawn, spec.BinaryPath, err)
	}
	started = &h.Worker
	return h, nil
}

// finish handles the end of a worker this Spawner started, once h.exit
// holds its status: it stops what the worker left behind, reports its end,
// and schedules its restart when its policy asks for one.
func (s *Spawner) finish(h *Handle, cgroup string) {
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
