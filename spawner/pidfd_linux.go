package spawner

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// procHandle pins one process: a pidfd always refers to the process it was
// opened for, never to a later one that reuses the number, and becomes
// readable when that process exits, whoever its parent is.
type procHandle struct{ fd int }

func openProcess(pid int) (*procHandle, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, err
	}
	return &procHandle{fd: fd}, nil
}

// Exited waits up to d for the process to exit and reports whether it has.
func (h *procHandle) Exited(d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

func (h *procHandle) Close() error { return unix.Close(h.fd) }
