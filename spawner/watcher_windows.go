package spawner

import (
	"sync"
	"time"

	"golang.org/x/sys/windows"
)

// watch is one process the watcher waits for.
type watch struct {
	pid int
	// fd is a process handle (SYNCHRONIZE) the watcher owns and closes.
	fd windows.Handle
	// job, when set, is a handle to the worker's job that the watcher
	// holds until fire returned, so that the job's name lives while the
	// leftovers of an exited worker are stopped; when 0, add opens it.
	job windows.Handle
	// gone is unused here: every watched process has a handle.
	gone func() bool
	// fire is called once, from its own goroutine, after the process exited.
	fire func()
}

// watcher waits for the exits of every worker of every Spawner in this
// process: WaitForMultipleObjects takes at most 64 handles, so each
// waiter goroutine holds one wake-up event and up to 63 process handles,
// and a hundred workers cost two blocked threads rather than a hundred.
type watcher struct {
	mu      sync.Mutex
	waiters []*waiter
}

// waiter is one goroutine blocked in WaitForMultipleObjects.
type waiter struct {
	wake    windows.Handle // auto-reset event: the list changed
	watches []*watch       // guarded by watcher.mu
}

const handlesPerWaiter = 64 - 1 // MAXIMUM_WAIT_OBJECTS, less the wake-up event

var processWatcher = sync.OnceValue(func() *watcher { return &watcher{} })

// add starts watching x; its fire runs even when the process has already exited.
func (w *watcher) add(x *watch) {
	if x.job == 0 {
		x.job = holdJob(x.pid)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wt := range w.waiters {
		if len(wt.watches) < handlesPerWaiter {
			wt.watches = append(wt.watches, x)
			windows.SetEvent(wt.wake)
			return
		}
	}
	ev, err := windows.CreateEvent(nil, 0, 0, nil)
	if err != nil {
		// No event to wait with: wait the old way, one goroutine for it.
		go func() {
			windows.WaitForSingleObject(x.fd, windows.INFINITE)
			x.fire()
			x.close()
		}()
		return
	}
	wt := &waiter{wake: ev, watches: []*watch{x}}
	w.waiters = append(w.waiters, wt)
	go w.loop(wt)
}

// loop waits for wt's processes and hands each that exited to its fire.
func (w *watcher) loop(wt *waiter) {
	for {
		w.mu.Lock()
		hs := make([]windows.Handle, 0, 1+len(wt.watches))
		hs = append(hs, wt.wake)
		for _, x := range wt.watches {
			hs = append(hs, x.fd)
		}
		w.mu.Unlock()
		ev, err := windows.WaitForMultipleObjects(hs, false, windows.INFINITE)
		i := int(ev - windows.WAIT_OBJECT_0)
		if err != nil {
			time.Sleep(50 * time.Millisecond) // cannot happen with valid handles; never spin
			continue
		}
		if i <= 0 || i >= len(hs) {
			continue // woken: the list changed
		}
		w.mu.Lock()
		x := wt.watches[i-1]
		wt.watches = append(wt.watches[:i-1:i-1], wt.watches[i:]...)
		w.mu.Unlock()
		go func() {
			x.fire()
			x.close()
		}()
	}
}

// close releases x's handles once its exit was handled. Its job is
// terminated first: what the worker left was stopped by then, and what
// may remain is its console host, which Wine keeps running.
func (x *watch) close() {
	windows.CloseHandle(x.fd)
	if x.job != 0 {
		windows.TerminateJobObject(x.job, terminateExitCode)
		windows.CloseHandle(x.job)
	}
}

// holdJob opens the job of the worker running as pid (named after the
// marker in its environment), or returns 0.
func holdJob(pid int) windows.Handle {
	m := readMarker(pid)
	if m == nil {
		return 0
	}
	job, err := openJob(jobName(m.hive(), m.worker(), pid))
	if err != nil {
		return 0
	}
	return job
}
