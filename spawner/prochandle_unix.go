//go:build unix

package spawner

import (
	"errors"
	"syscall"
	"time"
)

// procHandle pins one process while the agent acts on it. Where pidfds
// work (Linux 5.3+), it holds one: a pidfd always refers to the process it
// was opened for, never to a later one that reuses the number, and becomes
// readable the moment that process exits, whoever its parent is. Elsewhere
// (macOS, old kernels, seccomp profiles that deny pidfd_open) it polls
// kill(pid, 0), and the identity check right before each signal is the only
// guard against pid reuse.
type procHandle struct {
	pid int
	fd  int // -1: no pidfd
}

// pidfdOpen is a variable so tests can take pidfds away.
var pidfdOpen = openPidfd

func openProcess(pid int) (*procHandle, error) {
	fd, err := pidfdOpen(pid)
	if err == nil {
		return &procHandle{pid: pid, fd: fd}, nil
	}
	if errors.Is(err, syscall.ESRCH) {
		return nil, err
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return nil, err
	}
	return &procHandle{pid: pid, fd: -1}, nil
}

// Exited waits up to d for the process to exit and reports whether it has.
// Without a pidfd a zombie still counts as running; callers decide with
// groupGone, which does not.
func (h *procHandle) Exited(d time.Duration) bool {
	if h.fd >= 0 {
		return pidfdExited(h.fd, d)
	}
	deadline := time.Now().Add(d)
	for {
		if errors.Is(syscall.Kill(h.pid, 0), syscall.ESRCH) {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(5*time.Millisecond, time.Until(deadline)))
	}
}

// Close releases the pidfd, if any.
func (h *procHandle) Close() error {
	if h.fd < 0 {
		return nil
	}
	return syscall.Close(h.fd)
}

// Signal sends sig to the pinned process. Without a pidfd it falls back to
// the pid, which the caller has verified right before.
func (h *procHandle) Signal(sig syscall.Signal) error {
	if h.fd >= 0 {
		return pidfdSignal(h.fd, sig)
	}
	return syscall.Kill(h.pid, sig)
}

// release hands the pidfd over to someone else (the watcher), so Close
// leaves it open.
func (h *procHandle) release() int {
	fd := h.fd
	h.fd = -1
	return fd
}
