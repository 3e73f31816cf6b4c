package commands

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// MaxDeadlineMS bounds a drain's deadline_ms (a day).
const MaxDeadlineMS = 86_400_000

// Agent is what the agent commands need of the agent itself.
// Implementations must be safe for concurrent use.
type Agent interface {
	// SetDraining records (and persists, and announces) the drain state
	// asked for by the command by. Turning it on returns a channel closed
	// when a resume ends it; with StopWorkers the agent remembers when the
	// deadline ends, so that a restarted agent stops the workers then.
	SetDraining(on bool, d wire.DrainState, by wire.Envelope) (wire.DrainState, <-chan struct{}, error)
	// DrainStopped records that the drain's workers were stopped at its
	// deadline, so that a restarted agent does not stop them again.
	DrainStopped()
}

// Drain stops the agent from starting workers (spawn and restart answer
// draining; queued intake spawns wait) and, with StopWorkers, deletes
// every worker with the default grace once DeadlineMS has passed.
type Drain struct {
	wire.DrainRequest
}

// Kind is agent.drain.
func (c *Drain) Kind() string             { return wire.KindDrain }
func (c *Drain) envelope() *wire.Envelope { return &c.Envelope }

func (c *Drain) validate() *wire.Error {
	if c.DeadlineMS == nil {
		var z int64
		c.DeadlineMS = &z
	}
	if *c.DeadlineMS < 0 || *c.DeadlineMS > MaxDeadlineMS {
		return BadRequest("deadline_ms", "%d: want 0-%d", *c.DeadlineMS, MaxDeadlineMS)
	}
	if *c.DeadlineMS > 0 && !c.StopWorkers {
		return BadRequest("deadline_ms", "only with stop_workers: it is how long workers may keep running")
	}
	return nil
}

// Execute turns draining on and, with stop_workers, deletes every worker
// after the deadline (unless a resume comes first).
func (c *Drain) Execute(ctx context.Context, d Deps) (any, error) {
	if d.Agent == nil {
		return nil, &wire.Error{Code: wire.CodeInternal, Message: "this agent cannot drain"}
	}
	deadline := time.Duration(*c.DeadlineMS) * time.Millisecond
	st, resumed, err := d.Agent.SetDraining(true, wire.DrainState{StopWorkers: c.StopWorkers, DeadlineMS: *c.DeadlineMS}, c.Envelope)
	if err != nil {
		return nil, err
	}
	d.Narrator.Narrate("agent_draining", wire.LevelInfo,
		fmt.Sprintf("Hive %s is draining: spawns and restarts are refused, queued intake spawns wait for a resume.", d.Spawner.HiveID()), Fields{})
	res := wire.DrainResult{DrainState: st}
	if !c.StopWorkers {
		return res, nil
	}
	if deadline > 0 {
		d.Narrator.Narrate("agent_drain_deadline", wire.LevelInfo,
			fmt.Sprintf("Workers may keep running for %s; then each is deleted with a %d ms grace.", deadline, DefaultGraceMS), Fields{})
		t := time.NewTimer(deadline)
		defer t.Stop()
		select {
		case <-t.C:
		case <-resumed:
			d.Narrator.Narrate("agent_resumed", wire.LevelInfo, "Resumed before the deadline; no worker was stopped.", Fields{})
			res.Resumed = true
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ws, err := d.Spawner.List(ctx)
	if err != nil {
		return nil, err
	}
	res.Stopped = []string{}
	for _, w := range ws {
		g := DefaultGraceMS
		del := &Delete{DeleteRequest: wire.DeleteRequest{Envelope: c.Envelope, WorkerID: w.WorkerID, GraceMS: &g}}
		if _, err := del.Execute(ctx, d); err != nil {
			d.Narrator.Narrate("agent_drain_stop_failed", wire.LevelWarn, fmt.Sprintf("Worker %s could not be stopped: %v", w.WorkerID, err), Fields{WorkerID: w.WorkerID})
			continue
		}
		d.Narrator.Narrate("worker_stopped", wire.LevelInfo, fmt.Sprintf("Worker %s (pid %d) stopped for the drain.", w.WorkerID, w.PID), Fields{WorkerID: w.WorkerID, PID: w.PID})
		res.Stopped = append(res.Stopped, w.WorkerID)
	}
	// A worker waiting for its restart would start again on its own: the
	// delete cancels the restart (narrated as worker_restart_cancelled).
	for _, dep := range d.Spawner.Departed() {
		if dep.State != spawner.StateBackoff || slices.Contains(res.Stopped, dep.WorkerID) {
			continue
		}
		g := DefaultGraceMS
		del := &Delete{DeleteRequest: wire.DeleteRequest{Envelope: c.Envelope, WorkerID: dep.WorkerID, GraceMS: &g}}
		if _, err := del.Execute(ctx, d); err != nil {
			d.Narrator.Narrate("agent_drain_stop_failed", wire.LevelWarn, fmt.Sprintf("Worker %s could not be stopped: %v", dep.WorkerID, err), Fields{WorkerID: dep.WorkerID})
			continue
		}
		res.Stopped = append(res.Stopped, dep.WorkerID)
	}
	d.Agent.DrainStopped()
	return res, nil
}

// Resume ends a drain: spawns and restarts are served again and queued
// intake spawns run.
type Resume struct {
	wire.ResumeRequest
}

// Kind is agent.resume.
func (c *Resume) Kind() string             { return wire.KindResume }
func (c *Resume) envelope() *wire.Envelope { return &c.Envelope }
func (c *Resume) validate() *wire.Error    { return nil }

// Execute turns draining off.
func (c *Resume) Execute(ctx context.Context, d Deps) (any, error) {
	if d.Agent == nil {
		return nil, &wire.Error{Code: wire.CodeInternal, Message: "this agent cannot drain"}
	}
	st, _, err := d.Agent.SetDraining(false, wire.DrainState{}, c.Envelope)
	if err != nil {
		return nil, err
	}
	d.Narrator.Narrate("agent_resumed", wire.LevelInfo, fmt.Sprintf("Hive %s serves spawns and restarts again.", d.Spawner.HiveID()), Fields{})
	return wire.DrainResult{DrainState: st}, nil
}
