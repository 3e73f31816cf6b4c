//go:build unix && !linux

package spawner

import (
	"errors"
	"syscall"
	"time"
)

// procHandle is the portable stand-in for a pidfd: it polls kill(pid, 0).
// It cannot pin the process, so the identity check right before each signal
// is the only guard against pid reuse here.
type procHandle struct{ pid int }

func openProcess(pid int) (*procHandle, error) {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return nil, err
	}
	return &procHandle{pid: pid}, nil
}

// Exited waits up to d for the process to exit and reports whether it has.
func (h *procHandle) Exited(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if errors.Is(syscall.Kill(h.pid, 0), syscall.ESRCH) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *procHandle) Close() error { return nil }
