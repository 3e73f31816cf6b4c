package spawner

import (
	"time"

	"golang.org/x/sys/windows"
)

// procHandle pins one process while the agent acts on it: Windows does not
// reuse a pid while a handle to its process is open, and the handle is
// signalled the moment the process exits (the role pidfds play on Linux).
type procHandle struct {
	pid int
	h   windows.Handle // 0 once released
}

func openProcess(pid int) (*procHandle, error) {
	h, err := processHandleOf(pid, 0)
	if err != nil {
		return nil, err
	}
	return &procHandle{pid: pid, h: h}, nil
}

// Exited waits up to d for the process to exit and reports whether it has.
func (p *procHandle) Exited(d time.Duration) bool {
	if p.h == 0 {
		return true
	}
	ev, err := windows.WaitForSingleObject(p.h, uint32(d.Milliseconds()))
	return err == nil && ev == windows.WAIT_OBJECT_0
}

// Close releases the handle, if still held.
func (p *procHandle) Close() error {
	if p.h == 0 {
		return nil
	}
	h := p.h
	p.h = 0
	return windows.CloseHandle(h)
}

// release hands the handle over to the watcher, so Close leaves it open.
func (p *procHandle) release() windows.Handle {
	h := p.h
	p.h = 0
	return h
}
