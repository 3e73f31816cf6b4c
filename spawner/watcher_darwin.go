package spawner

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// watchIdent is what x is known by in the kqueue: its pid. kqueue's
// EVFILT_PROC watches any process of the agent's user, its child or not.
func watchIdent(x *watch) (int, bool) { return x.pid, true }

func epollCreate() (int, error) { return unix.Kqueue() }

// epollAdd asks for one NOTE_EXIT of pid; it fails with ESRCH when pid
// has already exited (the watcher then polls, and finds it gone).
func epollAdd(kq, pid int) error {
	var ev unix.Kevent_t
	unix.SetKevent(&ev, pid, unix.EVFILT_PROC, unix.EV_ADD|unix.EV_ONESHOT)
	ev.Fflags = unix.NOTE_EXIT
	_, err := unix.Kevent(kq, []unix.Kevent_t{ev}, nil, nil)
	return err
}

// epollDel does nothing: a one-shot event leaves the kqueue when it fires.
func epollDel(int, int) {}

// epollWait blocks until at least one watched process exited and writes
// their pids into pids.
func epollWait(kq int, pids []int32) int {
	evs := make([]unix.Kevent_t, len(pids))
	for {
		n, err := unix.Kevent(kq, nil, evs, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			time.Sleep(pollInterval)
			continue
		}
		for i := range n {
			pids[i] = int32(evs[i].Ident)
		}
		return n
	}
}

func closeFD(fd int) { unix.Close(fd) }

// childPoller is nil: the kqueue reports a child's exit without reaping
// it, and a child whose exit it missed is waited for by cmd.Wait.
func childPoller(int) func() bool { return nil }
