package spawner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// creationFlags start a worker suspended (so it runs no instruction
// outside its job), as the leader of a new process group (the target of
// CTRL_BREAK), with a console of its own (hidden): a worker on the agent's
// console would die with that console's window, and GenerateConsoleCtrlEvent
// reaches only processes attached to a console.
const creationFlags = windows.CREATE_SUSPENDED | windows.CREATE_NEW_PROCESS_GROUP | windows.CREATE_NEW_CONSOLE

// launch starts the worker suspended, puts it into a job object of its
// own, gives it a handle to the job (so the job and its name live as long
// as the worker does, and a restarted agent can reopen it), resumes it,
// and hands its process handle to the exit watcher. Go's os/exec cannot
// start a process inside a job (golang/go#32404), hence the suspended start.
func (s *Spawner) launch(ctx context.Context, w Worker, spec Spec, env, args []string, logFile *os.File) (*Handle, error) {
	cmd := exec.Command(w.BinaryPath, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: creationFlags, HideWindow: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w.PID = cmd.Process.Pid
	ph, job, err := contain(w)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	cmd.Process.Release() // ph pins the pid from here on
	if w.StartTime, err = creationMS(ph); err != nil {
		w.StartTime = time.Now().UnixMilli()
	}
	s.mu.Lock()
	h := &Handle{Worker: w, spec: spec, done: make(chan struct{}), book: &s.book}
	s.watched[w.PID] = watched{w: w, own: true, done: h.done}
	s.mu.Unlock()
	if s.cfg.OnStart != nil {
		s.cfg.OnStart(w)
	}
	processWatcher().add(&watch{pid: w.PID, fd: ph, job: job, fire: func() {
		h.exit = exitOfHandle(ph, h.StartTime)
		s.finish(h, "")
	}})
	return h, nil
}

// contain puts the suspended worker into its job and resumes it. It returns
// a handle to the worker's process and one to its job.
func contain(w Worker) (ph, job windows.Handle, err error) {
	ph, err = processHandleOf(w.PID, windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE|windows.PROCESS_DUP_HANDLE)
	if err != nil {
		return 0, 0, err
	}
	fail := func(step string, err error) (windows.Handle, windows.Handle, error) {
		windows.TerminateProcess(ph, 1)
		windows.CloseHandle(ph)
		if job != 0 {
			windows.CloseHandle(job)
		}
		return 0, 0, fmt.Errorf("%s: %w", step, err)
	}
	if job, err = createJob(jobName(w.HiveID, w.WorkerID, w.PID)); err != nil {
		return fail("create job object", err)
	}
	if err := windows.AssignProcessToJobObject(job, ph); err != nil {
		return fail("assign the worker to its job", err)
	}
	var inWorker windows.Handle
	if err := windows.DuplicateHandle(windows.CurrentProcess(), job, ph, &inWorker, 0, true, windows.DUPLICATE_SAME_ACCESS); err != nil {
		return fail("give the worker a handle to its job", err)
	}
	if err := resumeProcess(w.PID); err != nil {
		return fail("resume the worker", err)
	}
	return ph, job, nil
}

// resumeProcess resumes the threads of a process started suspended (its
// one main thread): os/exec keeps no thread handle, so they are found in
// a toolhelp snapshot.
func resumeProcess(pid int) error {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return err
	}
	defer windows.CloseHandle(snap)
	var e windows.ThreadEntry32
	e.Size = uint32(unsafe.Sizeof(e))
	resumed := 0
	for err = windows.Thread32First(snap, &e); err == nil; err = windows.Thread32Next(snap, &e) {
		if int(e.OwnerProcessID) != pid {
			continue
		}
		th, err := windows.OpenThread(windows.THREAD_SUSPEND_RESUME, false, e.ThreadID)
		if err != nil {
			return fmt.Errorf("open thread %d: %w", e.ThreadID, err)
		}
		_, err = windows.ResumeThread(th)
		windows.CloseHandle(th)
		if err != nil {
			return fmt.Errorf("resume thread %d: %w", e.ThreadID, err)
		}
		resumed++
	}
	if resumed == 0 {
		return errors.New("no thread found")
	}
	return nil
}

// exitOfHandle is how the process ended: its exit status, or Signal
// TERMINATE when the agent terminated its job.
func exitOfHandle(ph windows.Handle, startMS int64) Exit {
	e := Exit{Code: -1, RanMS: max(0, time.Now().UnixMilli()-startMS)}
	var code uint32
	if err := windows.GetExitCodeProcess(ph, &code); err != nil {
		return e
	}
	if code == terminateExitCode {
		e.Signal = "TERMINATE"
		return e
	}
	e.Code = int(int32(code))
	return e
}
