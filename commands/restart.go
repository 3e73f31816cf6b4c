package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// Restart stops a worker as a delete would, then starts it again with the
// spec it was started with, read from its marker: model, device, port,
// type, queen URL and restart policy. It works for workers adopted from an
// earlier run of the agent too.
type Restart struct {
	wire.RestartRequest
}

// Kind is worker.restart.
func (c *Restart) Kind() string             { return wire.KindRestart }
func (c *Restart) envelope() *wire.Envelope { return &c.Envelope }

func (c *Restart) validate() *wire.Error {
	d := Delete{DeleteRequest: wire.DeleteRequest{WorkerID: c.WorkerID, GraceMS: c.GraceMS}}
	if e := d.validate(); e != nil {
		return e
	}
	c.GraceMS = d.GraceMS
	s := Spawn{SpawnRequest: wire.SpawnRequest{ModelID: "x", Device: "cpu", Wait: c.Wait, WaitTimeoutMS: c.WaitTimeoutMS}}
	if e := s.validate(); e != nil {
		return e
	}
	return nil
}

// Execute finds the worker, stops it and starts it again.
func (c *Restart) Execute(ctx context.Context, d Deps) (any, error) {
	w, err := d.Spawner.Find(ctx, c.WorkerID)
	if errors.Is(err, spawner.ErrWorkerNotFound) {
		if res, ok, err := c.fromDeparted(ctx, d); ok {
			return res, err
		}
	}
	if err != nil {
		return nil, err
	}
	start := c.spawnOf(w, d)
	if e := start.validate(); e != nil {
		return nil, fmt.Errorf("worker %s cannot be started again from its marker: %w", w.WorkerID, e)
	}
	del := &Delete{DeleteRequest: wire.DeleteRequest{Envelope: c.Envelope, WorkerID: c.WorkerID, GraceMS: c.GraceMS}}
	out, err := del.Execute(ctx, d)
	if err != nil {
		return nil, err
	}
	stopped := out.(wire.DeleteResult)
	d.Narrator.Narrate("worker_stopped", wire.LevelInfo,
		fmt.Sprintf("Worker %s (pid %d) stopped after %s in %d ms; starting it again with the spec it was started with.",
			w.WorkerID, stopped.PID, orNone(stopped.Signal), stopped.StoppedMS), Fields{WorkerID: w.WorkerID, PID: stopped.PID})
	res, err := start.Execute(ctx, d)
	if err != nil {
		return nil, err
	}
	return wire.RestartResult{SpawnResult: res.(wire.SpawnResult), PreviousPID: w.PID}, nil
}

// spawnOf is the spawn that starts w again: its marker's spec, one
// restart later, with this command's envelope and wait.
func (c *Restart) spawnOf(w spawner.Worker, d Deps) *Spawn {
	restart := catalog.RestartNo
	if w.Restart.OnFailure {
		restart = catalog.RestartOnFailure
	}
	max := w.Restart.Max
	return &Spawn{
		SpawnRequest: wire.SpawnRequest{
			Envelope: c.Envelope, ModelID: w.ModelID, Device: w.Device, WorkerID: w.WorkerID,
			WorkerType: string(w.WorkerType), Port: w.Port, QueenURL: firstOf(w.QueenURL, d.Defaults.QueenURL),
			Wait: c.Wait, WaitTimeoutMS: c.WaitTimeoutMS, Restart: restart, MaxRestarts: &max,
		},
		restarts: w.Restarts + 1,
	}
}

func orNone(sig string) string {
	if sig == "" {
		return "no signal (it had exited)"
	}
	return sig
}

// fromDeparted starts again a worker that is not running but that this
// agent saw go: one that failed and waits for its restart (state backoff:
// its pending restart is cancelled and it starts at once) or one that
// exited within the exited TTL (state exited: as supervisorctl restart
// starts a stopped program). Nothing is stopped; the spec comes from its
// last process. ok is false when the worker is neither.
func (c *Restart) fromDeparted(ctx context.Context, d Deps) (any, bool, error) {
	for _, dep := range d.Spawner.Departed() {
		if dep.WorkerID != c.WorkerID || (dep.State != spawner.StateBackoff && dep.State != spawner.StateExited) {
			continue
		}
		start := c.spawnOf(dep.Worker, d)
		if e := start.validate(); e != nil {
			return nil, true, fmt.Errorf("worker %s cannot be started again from its last spec: %w", dep.WorkerID, e)
		}
		if dep.State == spawner.StateBackoff {
			if !d.Spawner.CancelRestart(c.WorkerID) {
				return nil, false, nil // its restart began meanwhile: not_found, as before
			}
			d.Narrator.Narrate("worker_restart_cancelled", wire.LevelInfo,
				fmt.Sprintf("Worker %s (pid %d) had failed and was waiting for its restart at %s; starting it now instead.",
					dep.WorkerID, dep.PID, wire.FormatTime(dep.RestartAt)), Fields{WorkerID: dep.WorkerID, PID: dep.PID})
		} else {
			d.Narrator.Narrate("worker_already_exited", wire.LevelInfo,
				fmt.Sprintf("Worker %s (pid %d) %s at %s; starting it again with the spec it was started with.",
					dep.WorkerID, dep.PID, dep.Exit, wire.FormatTime(dep.ExitedAt)), Fields{WorkerID: dep.WorkerID, PID: dep.PID})
		}
		res, err := start.Execute(ctx, d)
		if err != nil {
			return nil, true, err
		}
		return wire.RestartResult{SpawnResult: res.(wire.SpawnResult), PreviousPID: dep.PID}, true, nil
	}
	return nil, false, nil
}
