//go:build unix

package spawner

import (
	"sync"
	"time"
)

// watch is one process the watcher waits for.
type watch struct {
	pid int
	// fd is a pidfd the watcher owns and closes, or -1.
	fd int
	// gone reports, for a process without a usable pidfd, whether it has
	// exited; the watcher polls it.
	gone func() bool
	// fire is called once, from its own goroutine, after the process exited.
	fire func()
}

// watcher waits for the exits of every worker of every Spawner in this
// process with one goroutine: pidfds in one epoll set on Linux, pids in one
// kqueue (EVFILT_PROC, NOTE_EXIT) on macOS, so that watching a
// hundred workers costs one blocked thread rather than a hundred (a
// cmd.Wait per worker blocks a thread each). Processes without a pidfd
// (kernels before 5.3, seccomp profiles that deny pidfd_open) are polled
// by a second goroutine that sleeps between rounds and holds no thread.
type watcher struct {
	mu      sync.Mutex
	epfd    int // -1: no epoll, everything is polled
	byFD    map[int32]*watch
	polled  map[*watch]struct{}
	polling bool
}

// pollInterval is how often processes without a pidfd are checked.
const pollInterval = 50 * time.Millisecond

// processWatcher is the one watcher of this process, started on first use.
var processWatcher = sync.OnceValue(func() *watcher {
	w := &watcher{epfd: -1, byFD: map[int32]*watch{}, polled: map[*watch]struct{}{}}
	if fd, err := epollCreate(); err == nil {
		w.epfd = fd
		go w.loop()
	}
	return w
})

// add starts watching x. Its fire runs even when the process has already
// exited.
func (w *watcher) add(x *watch) {
	if id, ok := watchIdent(x); ok && w.epfd >= 0 {
		w.mu.Lock()
		w.byFD[int32(id)] = x
		w.mu.Unlock()
		if err := epollAdd(w.epfd, id); err == nil {
			return
		}
		w.mu.Lock()
		delete(w.byFD, int32(id))
		w.mu.Unlock()
	}
	if x.gone == nil {
		// Nothing to poll with: wait the old way, one goroutine (and,
		// for a child, one blocked thread) for this process.
		go x.fire()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polled[x] = struct{}{}
	if !w.polling {
		w.polling = true
		go w.poll()
	}
}

// loop hands each process whose pidfd became readable to its fire.
func (w *watcher) loop() {
	fds := make([]int32, 64)
	for {
		n := epollWait(w.epfd, fds)
		for _, fd := range fds[:n] {
			w.mu.Lock()
			x := w.byFD[fd]
			delete(w.byFD, fd)
			w.mu.Unlock()
			if x == nil {
				continue
			}
			// Out of the set before the number can be reused by a later open.
			epollDel(w.epfd, int(fd))
			if x.fd >= 0 {
				closeFD(x.fd)
			}
			go x.fire()
		}
	}
}

// poll checks the processes without a pidfd every pollInterval.
func (w *watcher) poll() {
	for {
		time.Sleep(pollInterval)
		w.mu.Lock()
		var done []*watch
		for x := range w.polled {
			if x.gone() {
				done = append(done, x)
				delete(w.polled, x)
			}
		}
		w.mu.Unlock()
		for _, x := range done {
			if x.fd >= 0 {
				closeFD(x.fd)
			}
			go x.fire()
		}
	}
}
