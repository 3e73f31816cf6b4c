package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/internal/statefile"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// drainState is whether the agent drains (PROTOCOL v1.2 "Drain"). It is
// the operator's decision, so it is kept in Config.DrainFile and read at
// Start: an agent restarted while draining drains on.
type drainState struct {
	mu  sync.Mutex
	cur wire.DrainState
	// stopAt, job and command are the drain file's own fields: when a
	// drain with stop_workers stops the workers, and the command that asked.
	stopAt       time.Time
	job, command string
	// resumed is closed by the resume that ends the current drain.
	resumed chan struct{}
}

// drainFile is what Config.DrainFile holds: the drain state as the wire
// shows it, plus what an agent restarted during the drain's deadline needs
// to stop the workers when it ends (resumeDrainDeadline).
type drainFile struct {
	wire.DrainState
	// StopAtMS is when the workers are stopped (ms since the epoch); 0
	// without stop_workers and once they were stopped.
	StopAtMS  int64  `json:"stop_at_ms,omitempty"`
	JobID     string `json:"job_id,omitempty"`
	CommandID string `json:"command_id,omitempty"`
}

func (d *drainState) active() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur.Draining
}

// wait returns a channel closed once the agent is not draining.
func (d *drainState) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.cur.Draining {
		c := make(chan struct{})
		close(c)
		return c
	}
	return d.resumed
}

var _ commands.Agent = (*Consumer)(nil)

// loadDrain reads the drain state an earlier run left.
func (c *Consumer) loadDrain() error {
	if c.cfg.DrainFile == "" {
		return nil
	}
	data, err := os.ReadFile(c.cfg.DrainFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read drain state: %w", err)
	}
	var f drainFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("drain state %s: %w", c.cfg.DrainFile, err)
	}
	if f.Draining {
		c.drain.mu.Lock()
		c.drain.cur, c.drain.resumed = f.DrainState, make(chan struct{})
		c.drain.job, c.drain.command = f.JobID, f.CommandID
		c.drain.stopAt = time.Time{}
		if f.StopAtMS > 0 {
			c.drain.stopAt = time.UnixMilli(f.StopAtMS)
		}
		c.drain.mu.Unlock()
		c.log.Warn("draining, as an earlier run was told: spawns and restarts are refused until a resume", "since", f.Since, "file", c.cfg.DrainFile)
	}
	return nil
}

// resumeDrainDeadline takes on the deadline of a drain with stop_workers
// that an earlier run accepted and did not live to end: the workers are
// stopped when it passes (at once when it has), unless a resume comes
// first, narrated on the drain's own job. It runs as an agent.drain
// command with the deadline that is left, so it is counted, waited for by
// Close and cancelled like the command it continues.
func (c *Consumer) resumeDrainDeadline() {
	c.drain.mu.Lock()
	st, stopAt, job, command := c.drain.cur, c.drain.stopAt, c.drain.job, c.drain.command
	c.drain.mu.Unlock()
	if !st.Draining || !st.StopWorkers || stopAt.IsZero() {
		return
	}
	left := max(0, time.Until(stopAt).Milliseconds())
	body, err := json.Marshal(wire.DrainRequest{Envelope: wire.Envelope{JobID: job, CommandID: command}, StopWorkers: true, DeadlineMS: &left})
	if err != nil {
		c.log.Error("resume the drain's deadline", "err", err)
		return
	}
	c.log.Warn("the drain's deadline outlived the earlier run; its workers are stopped when it passes",
		"stop_at", stopAt.UTC().Format(time.RFC3339Nano), "in", time.Duration(left)*time.Millisecond, "job_id", job)
	c.dispatch(wire.KindDrain, inbound{data: body, via: ", resuming the deadline of the drain an earlier run accepted"})
}

// DrainStopped records that the drain's deadline passed and its workers
// were stopped, so that a later run does not stop workers again.
func (c *Consumer) DrainStopped() {
	c.drain.mu.Lock()
	defer c.drain.mu.Unlock()
	if !c.drain.cur.Draining || c.drain.stopAt.IsZero() {
		return
	}
	c.drain.stopAt = time.Time{}
	if err := c.saveDrain(newDrainFile(c.drain.cur, c.drain.stopAt, c.drain.job, c.drain.command)); err != nil {
		c.log.Warn("cannot record that the drain stopped its workers; a restarted agent stops them again", "err", err)
	}
}

// newDrainFile is the drain file's content for st, the workers to be
// stopped at stopAt (zero: not or no longer), asked by job and command.
func newDrainFile(st wire.DrainState, stopAt time.Time, job, command string) drainFile {
	f := drainFile{DrainState: st, JobID: job, CommandID: command}
	if !stopAt.IsZero() {
		f.StopAtMS = stopAt.UnixMilli()
	}
	return f
}

// SetDraining turns draining on or off: it persists the state first (a
// drain the agent cannot keep is refused), then re-registers the service
// with metadata draining "true" (or without it) and publishes the event.
func (c *Consumer) SetDraining(on bool, want wire.DrainState, by wire.Envelope) (wire.DrainState, <-chan struct{}, error) {
	c.drain.mu.Lock()
	prev := c.drain.cur
	next := wire.DrainState{}
	var stopAt time.Time
	if on {
		next = want
		next.Draining = true
		next.Since = prev.Since
		if !prev.Draining {
			next.Since = wire.Time{Time: time.Now()}
		}
		if next.StopWorkers {
			stopAt = time.Now().Add(time.Duration(next.DeadlineMS) * time.Millisecond)
		}
		if prev.Draining && by.CommandID != "" && by.CommandID == c.drain.command {
			// The same drain, continued by a later run with the deadline
			// that was left: the state keeps the deadline it was given.
			next.DeadlineMS = prev.DeadlineMS
		}
	}
	if err := c.saveDrain(newDrainFile(next, stopAt, by.JobID, by.CommandID)); err != nil {
		c.drain.mu.Unlock()
		return prev, nil, err
	}
	c.drain.cur, c.drain.stopAt, c.drain.job, c.drain.command = next, stopAt, by.JobID, by.CommandID
	switch {
	case on && !prev.Draining:
		c.drain.resumed = make(chan struct{})
	case !on && prev.Draining:
		close(c.drain.resumed)
	}
	resumed := c.drain.resumed
	c.drain.mu.Unlock()
	if on != prev.Draining {
		if err := c.reregister(); err != nil {
			c.log.Error("metadata not updated", "draining", on, "err", err)
		}
		ev := subjects.EventResumed
		if on {
			ev = subjects.EventDraining
		}
		c.publishAgentEvent(ev, wire.DrainEvent{HiveID: c.cfg.HiveID, DrainState: next})
		c.log.Warn("drain state changed", "draining", on, "stop_workers", next.StopWorkers, "deadline_ms", next.DeadlineMS)
	}
	return next, resumed, nil
}

// saveDrain writes st to the drain file (atomically: a temporary file
// renamed over it); not draining removes it.
func (c *Consumer) saveDrain(st drainFile) error {
	f := c.cfg.DrainFile
	if f == "" {
		return nil
	}
	if !st.Draining {
		if err := statefile.Remove(f); err != nil {
			return fmt.Errorf("remove drain state: %w", err)
		}
		return nil
	}
	data, _ := json.Marshal(st)
	if err := statefile.Write(f, data); err != nil {
		return fmt.Errorf("write drain state: %w", err)
	}
	return nil
}

// startsWorker reports whether a command of kind would start a worker.
func startsWorker(kind string) bool {
	return kind == wire.KindSpawn || kind == wire.KindRestart
}

// refusal is the error a command gets instead of running: draining for
// spawns and restarts while the agent drains; nil otherwise.
func (c *Consumer) refusal(kind string) *wire.Error {
	if !startsWorker(kind) || !c.drain.active() {
		return nil
	}
	return &wire.Error{Code: wire.CodeDraining,
		Message: fmt.Sprintf("hive %s is draining: it starts no workers until agent.resume (hive-agent resume --hive %s)", c.cfg.HiveID, c.cfg.HiveID)}
}

// holdWhileDraining keeps an intake command that would start a worker
// until the agent resumes; false when ctx ends first (the command is then
// given back, unacknowledged, for the next run).
func (c *Consumer) holdWhileDraining(ctx context.Context, kind string) bool {
	if !startsWorker(kind) {
		return true
	}
	select {
	case <-c.drain.wait():
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Consumer) publishAgentEvent(event string, v any) {
	subj, err := subjects.AgentEvent(c.cfg.HiveID, event)
	c.publishTo(subj, err, v)
}
