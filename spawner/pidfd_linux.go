package spawner

import (
	"errors"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func openPidfd(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

// pidfdExited waits up to d for the pidfd to become readable (its process exited).
func pidfdExited(fd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// pidfdSignal sends sig to the process the pidfd refers to, never to a
// later process that reused its number.
func pidfdSignal(fd int, sig syscall.Signal) error {
	return unix.PidfdSendSignal(fd, unix.Signal(sig), nil, 0)
}
