package spawner

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// watchIdent is what x is known by in the epoll set: its pidfd.
func watchIdent(x *watch) (int, bool) { return x.fd, x.fd >= 0 }

func epollCreate() (int, error) { return unix.EpollCreate1(unix.EPOLL_CLOEXEC) }

func epollAdd(epfd, fd int) error {
	return unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
}

func epollDel(epfd, fd int) { unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, fd, nil) }

// epollWait blocks until at least one pidfd is readable and writes their
// numbers into fds.
func epollWait(epfd int, fds []int32) int {
	evs := make([]unix.EpollEvent, len(fds))
	for {
		n, err := unix.EpollWait(epfd, evs, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			time.Sleep(pollInterval) // cannot happen with a valid set; never spin
			continue
		}
		for i := range n {
			fds[i] = evs[i].Fd
		}
		return n
	}
}

func closeFD(fd int) { unix.Close(fd) }

// childPoller returns a check that reports, without reaping it, whether
// the child pid has exited, so that cmd.Wait still gets its status.
func childPoller(pid int) func() bool { return func() bool { return childExited(pid) } }

func childExited(pid int) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if err != nil {
		return errors.Is(err, unix.ECHILD)
	}
	return info.Signo != 0 // left zero when no child has changed state
}
