package spawner

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

// A worker's job object holds it and everything it starts: a child cannot
// leave it (no breakaway is allowed), TerminateJobObject ends them all,
// and its process id list says when they are gone. There is no
// kill-on-close limit: workers outlive the agent, as on Linux.

// Job object access rights (winnt.h).
const (
	jobObjectAssignProcess = 0x0001
	jobObjectQuery         = 0x0004
	jobObjectTerminate     = 0x0008
)

// terminateExitCode is the exit status TerminateJobObject gives the
// processes it ends; an exit with it reads as Signal TERMINATE.
const terminateExitCode = 0x48495645 // "HIVE"

var (
	kernel32             = windows.NewLazySystemDLL("kernel32.dll")
	procIsProcessInJob   = kernel32.NewProc("IsProcessInJob")
	procOpenJobObjectW   = kernel32.NewProc("OpenJobObjectW")
	procAttachConsole    = kernel32.NewProc("AttachConsole")
	procFreeConsole      = kernel32.NewProc("FreeConsole")
	procSetConsoleCtrlHn = kernel32.NewProc("SetConsoleCtrlHandler")
)

// jobName names the job of the worker of hive and id running as pid, in
// the session's namespace (workers run in the agent's session). The pid
// makes the name say which process is the worker: its children are in the
// job too and carry its marker, but no job bears their pid.
func jobName(hive, worker string, pid int) string {
	return `Local\hive-agent.` + hive + "." + worker + "." + strconv.Itoa(pid)
}

func createJob(name string) (windows.Handle, error) {
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return 0, err
	}
	return windows.CreateJobObject(nil, p)
}

// openJob opens the job named name for queries and termination.
func openJob(name string) (windows.Handle, error) {
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return 0, err
	}
	r, _, e := procOpenJobObjectW.Call(jobObjectQuery|jobObjectTerminate|jobObjectAssignProcess, 0, uintptr(unsafe.Pointer(p)))
	if r == 0 {
		return 0, e
	}
	return windows.Handle(r), nil
}

// inJob reports whether the process is in the job. The process handle
// needs PROCESS_QUERY_INFORMATION (Wine refuses the limited right).
func inJob(proc, job windows.Handle) bool {
	var b int32
	r, _, _ := procIsProcessInJob.Call(uintptr(proc), uintptr(job), uintptr(unsafe.Pointer(&b)))
	return r != 0 && b != 0
}

// jobPids lists the processes in the job that have not exited, except the
// console host (conhost.exe) that Windows starts for a worker's console: it
// is the system's, and leaves by itself once no process uses the console.
func jobPids(job windows.Handle) ([]int, error) {
	all, err := allJobPids(job)
	if err != nil {
		return nil, err
	}
	pids := all[:0]
	for _, pid := range all {
		if !isConsoleHost(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// isConsoleHost reports whether pid runs conhost.exe.
func isConsoleHost(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	buf := make([]uint16, windows.MAX_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err != nil {
		return false
	}
	name := windows.UTF16ToString(buf[:n])
	return strings.EqualFold(filepath.Base(name), "conhost.exe")
}

// allJobPids lists every process in the job that has not exited.
func allJobPids(job windows.Handle) ([]int, error) {
	for n := 64; ; n *= 4 {
		// JOBOBJECT_BASIC_PROCESS_ID_LIST: two uint32 counts, then ULONG_PTRs.
		buf := make([]uintptr, 1+n)
		err := windows.QueryInformationJobObject(job, windows.JobObjectBasicProcessIdList,
			uintptr(unsafe.Pointer(&buf[0])), uint32(len(buf))*uint32(unsafe.Sizeof(buf[0])), nil)
		if errors.Is(err, windows.ERROR_MORE_DATA) {
			continue
		}
		if err != nil {
			return nil, err
		}
		counts := (*[2]uint32)(unsafe.Pointer(&buf[0]))
		listed := int(counts[1])
		pids := make([]int, 0, listed)
		for _, p := range buf[1 : 1+listed] {
			pids = append(pids, int(p))
		}
		return pids, nil
	}
}
