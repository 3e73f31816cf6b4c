package spawner

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/shirou/gopsutil/v4/process"
	"golang.org/x/sys/windows"
)

// procStat is what the spawner knows of a process on Windows. Process
// groups cannot be queried here: a worker's job holds what the group
// holds on Unix. markerCache stays off (envStart and envEnd are 0).
type procStat struct {
	ppid, pgid       int
	zombie           bool
	startTicks       uint64
	envStart, envEnd uint64
}

// queryAccess is what inspecting a process needs: its times, exit code,
// token and job membership, its environment (read from its PEB), and
// waiting on it.
const queryAccess = windows.PROCESS_QUERY_INFORMATION | windows.PROCESS_VM_READ | windows.SYNCHRONIZE

// stillActive is GetExitCodeProcess's answer for a running process.
const stillActive = 259

func running(h windows.Handle) bool {
	var code uint32
	return windows.GetExitCodeProcess(h, &code) == nil && code == stillActive
}

// creationMS is the process's creation time in ms since the epoch.
func creationMS(h windows.Handle) (int64, error) {
	var c, e, k, u windows.Filetime
	if err := windows.GetProcessTimes(h, &c, &e, &k, &u); err != nil {
		return 0, fmt.Errorf("process times: %w", err)
	}
	return c.Nanoseconds() / 1e6, nil
}

func processStartTime(_ context.Context, pid int) (int64, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return 0, fmt.Errorf("open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	return creationMS(h)
}

// readMarker returns the marker in pid's environment, or nil.
func readMarker(pid int) marker {
	env, err := (&process.Process{Pid: int32(pid)}).Environ()
	if err != nil {
		return nil
	}
	return parseMarker(env)
}

// ownUser is the agent's user.
var ownUser = sync.OnceValue(func() *windows.SID {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil
	}
	return u.User.Sid
})

// sameUserHandle reports whether the process runs as the agent's user.
func sameUserHandle(h windows.Handle) bool {
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return false
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	own := ownUser()
	return err == nil && own != nil && u.User.Sid.Equals(own)
}

// allPids lists every process of the machine (a toolhelp snapshot).
func allPids() ([]int, error) {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		return nil, err
	}
	defer windows.CloseHandle(snap)
	var e windows.ProcessEntry32
	e.Size = uint32(unsafe.Sizeof(e))
	var pids []int
	for err = windows.Process32First(snap, &e); err == nil; err = windows.Process32Next(snap, &e) {
		if e.ProcessID != 0 {
			pids = append(pids, int(e.ProcessID))
		}
	}
	return pids, nil
}
