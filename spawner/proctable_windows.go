package spawner

import (
	"context"
	"fmt"

	"github.com/shirou/gopsutil/v4/process"
	"golang.org/x/sys/windows"
)

// inspect reads one process and returns it as a worker when it is one: it
// runs, as the agent's user, carries a marker that keep accepts, and is in
// the job named for that marker and its own pid (its children carry the
// marker and are in the job, but no job bears their pid). The process
// handle is held meanwhile, so the pid cannot be reused under the checks.
// Any error means "not a worker".
func (s *Spawner) inspect(ctx context.Context, pid int, in inspection) (Worker, bool) {
	h, err := windows.OpenProcess(queryAccess, false, uint32(pid))
	if err != nil {
		return Worker{}, false
	}
	defer windows.CloseHandle(h)
	if !running(h) {
		return Worker{}, false
	}
	env, err := (&process.Process{Pid: int32(pid)}).EnvironWithContext(ctx)
	if err != nil {
		return Worker{}, false
	}
	m := parseMarker(env)
	if m == nil || !in.keep(m) || !sameUserHandle(h) {
		return Worker{}, false
	}
	job, err := openJob(jobName(m.hive(), m.worker(), pid))
	if err != nil {
		return Worker{}, false
	}
	defer windows.CloseHandle(job)
	if !inJob(h, job) {
		return Worker{}, false
	}
	start, err := creationMS(h)
	if err != nil {
		return Worker{}, false
	}
	w := Worker{PID: pid, StartTime: start}
	m.apply(&w)
	if in.withMemory {
		w.RSSBytes = s.memory(ctx, w)
	}
	return w, true
}

// memory is the worker's main process's resident memory (working set).
func (s *Spawner) memory(ctx context.Context, w Worker) uint64 {
	if mem, err := (&process.Process{Pid: int32(w.PID)}).MemoryInfoWithContext(ctx); err == nil {
		return mem.RSS
	}
	return 0
}

// processHandleOf opens pid with the rights the spawner's acts need.
func processHandleOf(pid int, extra uint32) (windows.Handle, error) {
	h, err := windows.OpenProcess(queryAccess|extra, false, uint32(pid))
	if err != nil {
		return 0, fmt.Errorf("open process %d: %w", pid, err)
	}
	return h, nil
}
