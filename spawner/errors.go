package spawner

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers map them to wire codes with errors.Is; the
// wrapped message carries the detail a person needs.
var (
	ErrBinaryNotFound    = errors.New("worker binary not found")
	ErrDeviceUnavailable = errors.New("device unavailable")
	ErrWorkerNotFound    = errors.New("worker not found")
	ErrWorkerRunning     = errors.New("worker already running")
	ErrPortTaken         = errors.New("port taken")
	ErrNoFreePort        = errors.New("no free port")
	ErrSpawn             = errors.New("spawn failed")
	ErrWorkerExited      = errors.New("worker exited")
	ErrNotReady          = errors.New("worker not ready")
)

// RunningError is returned by Start when a worker with the requested id is
// already running. It carries that worker so a retried command can be
// recognised by its command id.
type RunningError struct {
	Worker Worker
}

func (e *RunningError) Error() string {
	return fmt.Sprintf("worker %s is already running (pid %d, started by command %s)",
		e.Worker.WorkerID, e.Worker.PID, e.Worker.CommandID)
}

// Unwrap makes errors.Is(err, ErrWorkerRunning) true.
func (e *RunningError) Unwrap() error { return ErrWorkerRunning }

// ExitedError is returned when a worker died while the spawner waited on it.
type ExitedError struct {
	Worker  Worker
	Exit    Exit
	LogTail []string
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("worker %s (pid %d) %s after %d ms", e.Worker.WorkerID, e.Worker.PID, e.Exit, e.Exit.RanMS)
}

// Unwrap makes errors.Is(err, ErrWorkerExited) true.
func (e *ExitedError) Unwrap() error { return ErrWorkerExited }
