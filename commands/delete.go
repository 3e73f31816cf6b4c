package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// Limits of grace_ms.
const (
	DefaultGraceMS = 5000
	MaxGraceMS     = 60000
)

// Delete stops a worker: SIGTERM to its process group, SIGKILL after the grace.
type Delete struct {
	wire.DeleteRequest
}

// Kind is worker.delete.
func (c *Delete) Kind() string             { return wire.KindDelete }
func (c *Delete) envelope() *wire.Envelope { return &c.Envelope }

func (c *Delete) validate() *wire.Error {
	if e := requireWorkerID(c.WorkerID); e != nil {
		return e
	}
	if c.GraceMS == nil {
		g := DefaultGraceMS
		c.GraceMS = &g
	} else if *c.GraceMS < 0 || *c.GraceMS > MaxGraceMS {
		return BadRequest("grace_ms", "%d: want 0-%d", *c.GraceMS, MaxGraceMS)
	}
	return nil
}

func requireWorkerID(id string) *wire.Error {
	if id == "" {
		return BadRequest("worker_id", "required")
	}
	if err := subjects.ValidToken(id); err != nil {
		return BadRequest("worker_id", "%q %v", id, err)
	}
	return nil
}

// Execute stops the worker.
func (c *Delete) Execute(ctx context.Context, d Deps) (any, error) {
	grace := time.Duration(*c.GraceMS) * time.Millisecond
	// First, so a failed worker is not started again behind the delete.
	cancelled := d.Spawner.CancelRestart(c.WorkerID)
	if cancelled {
		d.Narrator.Narrate("worker_restart_cancelled", wire.LevelInfo,
			fmt.Sprintf("Worker %s had failed and was waiting to be restarted; it will not be.", c.WorkerID), Fields{WorkerID: c.WorkerID})
	}
	first := true
	var gpuPIDs []int
	// The spawner calls onSignal right before each signal, from one goroutine.
	res, err := d.Spawner.Stop(ctx, c.WorkerID, grace, func(sig string, w spawner.Worker) {
		if first && d.Events != nil {
			d.Events.WorkerStopping(w, c.JobID, grace)
		}
		if first {
			gpuPIDs = d.GPU.pidsOf(w)
		}
		// The first signal asks the worker to go (SIGTERM; CTRL_BREAK on
		// Windows), a later one forces it.
		asks := first
		first = false
		level, human := wire.LevelInfo, fmt.Sprintf("Sending %s to worker %s (process group %d); waiting up to %s for it to exit.", sig, w.WorkerID, w.PID, grace)
		if !asks {
			level, human = wire.LevelWarn, fmt.Sprintf("Worker %s was still running after %s; sending %s to process group %d.", w.WorkerID, grace, sig, w.PID)
		}
		d.Narrator.Narrate("worker_signal_sent", level, human, Fields{WorkerID: w.WorkerID, PID: w.PID})
	})
	if cancelled && errors.Is(err, spawner.ErrWorkerNotFound) {
		return wire.DeleteResult{WorkerID: c.WorkerID, RestartCancelled: true}, nil
	}
	if d.Redelivered && errors.Is(err, spawner.ErrWorkerNotFound) {
		return c.alreadyStopped(d), nil
	}
	if err != nil {
		return nil, err
	}
	out := wire.DeleteResult{WorkerID: res.Worker.WorkerID, PID: res.Worker.PID, Signal: res.Signal, StoppedMS: res.StoppedMS, RestartCancelled: cancelled}
	if rel := d.GPU.ReleaseCheck(ctx, res.Worker, gpuPIDs); rel.Checked {
		out.GPUReleased, out.GPUReleaseMS = &rel.Released, &rel.MS
	}
	return out, nil
}

// alreadyStopped answers a delete the intake delivered again whose worker
// is gone: the earlier delivery most likely stopped it, and the agent only
// never got to store that result.
func (c *Delete) alreadyStopped(d Deps) wire.AlreadyStoppedResult {
	note := fmt.Sprintf("Worker %s is not running. This delete was delivered again after the agent stopped before storing its result, so the earlier delivery most likely stopped it; nothing was signalled now.", c.WorkerID)
	d.Narrator.Narrate("worker_already_stopped", wire.LevelInfo, note, Fields{WorkerID: c.WorkerID})
	return wire.AlreadyStoppedResult{WorkerID: c.WorkerID, AlreadyStopped: true, Note: note}
}
