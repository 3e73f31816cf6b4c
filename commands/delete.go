package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/subjects"
)

// Limits of grace_ms.
const (
	DefaultGraceMS = 5000
	MaxGraceMS     = 60000
)

// Delete stops a worker: SIGTERM to its process group, SIGKILL after the grace.
type Delete struct {
	Envelope
	WorkerID string `json:"worker_id"`
	GraceMS  *int   `json:"grace_ms"`
}

// Kind is worker.delete.
func (c *Delete) Kind() string        { return KindDelete }
func (c *Delete) envelope() *Envelope { return &c.Envelope }

func (c *Delete) validate() *Error {
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

func requireWorkerID(id string) *Error {
	if id == "" {
		return BadRequest("worker_id", "required")
	}
	if err := subjects.ValidToken(id); err != nil {
		return BadRequest("worker_id", "%q %v", id, err)
	}
	return nil
}

// DeleteResult is the result of a delete.
type DeleteResult struct {
	WorkerID string `json:"worker_id"`
	// PID is the stopped worker's; absent when no process was left (the
	// delete only cancelled a pending restart).
	PID int `json:"pid,omitempty"`
	// Signal is the last signal sent: SIGTERM, or SIGKILL when the grace ran
	// out; on Windows CTRL_BREAK, or TERMINATE.
	Signal    string `json:"signal"`
	StoppedMS int64  `json:"stopped_ms"`
	// RestartCancelled is true when the worker had failed and was waiting
	// for its restart, which the delete cancelled.
	RestartCancelled bool `json:"restart_cancelled,omitempty"`
	// GPUReleased and GPUReleaseMS, for a worker on a GPU, say whether its
	// processes left the GPU within --vram-release-timeout, and when.
	GPUReleased  *bool  `json:"gpu_released,omitempty"`
	GPUReleaseMS *int64 `json:"gpu_release_ms,omitempty"`
}

// Execute stops the worker.
func (c *Delete) Execute(ctx context.Context, d Deps) (any, error) {
	grace := time.Duration(*c.GraceMS) * time.Millisecond
	// First, so a failed worker is not started again behind the delete.
	cancelled := d.Spawner.CancelRestart(c.WorkerID)
	if cancelled {
		d.Narrator.Narrate("worker_restart_cancelled", LevelInfo,
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
		level, human := LevelInfo, fmt.Sprintf("Sending %s to worker %s (process group %d); waiting up to %s for it to exit.", sig, w.WorkerID, w.PID, grace)
		if !asks {
			level, human = LevelWarn, fmt.Sprintf("Worker %s was still running after %s; sending %s to process group %d.", w.WorkerID, grace, sig, w.PID)
		}
		d.Narrator.Narrate("worker_signal_sent", level, human, Fields{WorkerID: w.WorkerID, PID: w.PID})
	})
	if cancelled && errors.Is(err, spawner.ErrWorkerNotFound) {
		return DeleteResult{WorkerID: c.WorkerID, RestartCancelled: true}, nil
	}
	if err != nil {
		return nil, err
	}
	out := DeleteResult{WorkerID: res.Worker.WorkerID, PID: res.Worker.PID, Signal: res.Signal, StoppedMS: res.StoppedMS, RestartCancelled: cancelled}
	if rel := d.GPU.ReleaseCheck(ctx, res.Worker, gpuPIDs); rel.Checked {
		out.GPUReleased, out.GPUReleaseMS = &rel.Released, &rel.MS
	}
	return out, nil
}
