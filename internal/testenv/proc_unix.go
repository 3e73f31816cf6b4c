//go:build unix

package testenv

import (
	"os"
	"strconv"
	"syscall"
)

func killHard(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// GroupMembers returns the pids of live processes in process group pgid.
func GroupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid && Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
