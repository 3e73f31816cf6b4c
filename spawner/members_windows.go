package spawner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/windows"
)

// members is everything that belongs to one worker on Windows: its job
// object, which holds the worker and every process it started (none can
// break away), marked or not. The fields beyond w mirror the Unix type
// that stop.go builds; cgroups do not exist here.
type members struct {
	w             Worker
	euid          int
	cgroup, mount string
	other         func(pid int, st procStat) bool
	markers       *markerCache   // unused: a job needs no marker search
	job           windows.Handle // opened on first use
	jobErr        error
}

// escapee exists for the shared code's sake: nothing escapes a job.
type escapee struct{ pid, pgid int }

// openJobOnce opens the worker's job by its name. A job whose last handle
// closed is gone, and with it every process it held that still ran.
func (m *members) openJobOnce() (windows.Handle, error) {
	if m.job == 0 && m.jobErr == nil {
		m.job, m.jobErr = openJob(jobName(m.w.HiveID, m.w.WorkerID, m.w.PID))
	}
	return m.job, m.jobErr
}

func (m *members) close() {
	if m.job != 0 {
		windows.CloseHandle(m.job)
		m.job = 0
	}
	m.jobErr = nil
}

// live counts the processes left in the worker's job, at most limit (0: all).
func (m *members) live(_ context.Context, limit int) int {
	if m.job == 0 {
		// Outside a stop the job is opened for this count alone, so no
		// handle is left open when no stop follows.
		defer m.close()
	}
	job, err := m.openJobOnce()
	if err != nil {
		return 0 // no job by that name: no handle and so no process is left
	}
	pids, err := jobPids(job)
	if err != nil {
		return 1 // cannot tell: assume someone is left
	}
	if limit > 0 && len(pids) > limit {
		return limit
	}
	return len(pids)
}

// gone reports whether nothing of the worker is left.
func (m *members) gone(ctx context.Context) bool { return m.live(ctx, 1) == 0 }

// stop sends CTRL_BREAK to the worker's process group, waits up to grace,
// then terminates its job and waits up to KillWait for the job to be
// empty. It returns the last step sent (CTRL_BREAK or TERMINATE) and
// whether everything went.
func (m *members) stop(ctx context.Context, grace time.Duration, leaderExited func(time.Duration) bool, onSignal func(string)) (string, bool, error) {
	defer m.close()
	job, err := m.openJobOnce()
	if err != nil {
		if errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
			return "", true, nil // the job went with its last process
		}
		return "", false, fmt.Errorf("open job of worker %s: %w", m.w.WorkerID, err)
	}
	steps := stopSteps{
		soft: "CTRL_BREAK", hard: "TERMINATE",
		SendSoft: func() error { return sendCtrlBreak(m.w.PID) },
		SendHard: func() error { return windows.TerminateJobObject(job, terminateExitCode) },
		WaitGone: func(ctx context.Context, d time.Duration) bool { return m.waitGone(ctx, d, leaderExited) },
		OnSignal: onSignal,
		OnSoftFailed: func(err error) {
			slog.Debug("cannot send CTRL_BREAK; terminating the job", "worker_id", m.w.WorkerID, "pid", m.w.PID, "err", err)
		},
	}
	return steps.run(ctx, grace)
}
