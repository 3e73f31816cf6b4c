//go:build unix

package spawner

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// defaultContainment is what Spawner.Containment says without cgroups.
const defaultContainment = ContainmentProcessGroup

// launch starts the worker's process detached (its own session and
// process group, in its cgroup when there is one), registers it as
// watched, waits until its marker is readable, calls OnStart, and hands it
// to the exit watcher.
func (s *Spawner) launch(ctx context.Context, w Worker, spec Spec, env, args []string, logFile *os.File) (*Handle, error) {
	cmd, cgroup, err := s.exec(w, args, env, logFile)
	if err != nil {
		return nil, err
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
	s.finish(h, cgroup)
}
