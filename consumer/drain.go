package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// drainState is whether the agent drains (PROTOCOL v1.2 "Drain"). It is
// the operator's decision, so it is kept in Config.DrainFile and read at
// Start: an agent restarted while draining drains on.
type drainState struct {
	mu  sync.Mutex
	cur wire.DrainState
	// resumed is closed by the resume that ends the current drain.
	resumed chan struct{}
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
	var st wire.DrainState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("drain state %s: %w", c.cfg.DrainFile, err)
	}
	if st.Draining {
		c.drain.mu.Lock()
		c.drain.cur, c.drain.resumed = st, make(chan struct{})
		c.drain.mu.Unlock()
		c.log.Warn("draining, as an earlier run was told: spawns and restarts are refused until a resume", "since", st.Since, "file", c.cfg.DrainFile)
	}
	return nil
}

// SetDraining turns draining on or off: it persists the state first (a
// drain the agent cannot keep is refused), then re-registers the service
// with metadata draining "true" (or without it) and publishes the event.
func (c *Consumer) SetDraining(on bool, want wire.DrainState) (wire.DrainState, <-chan struct{}, error) {
	c.drain.mu.Lock()
	prev := c.drain.cur
	next := wire.DrainState{}
	if on {
		next = want
		next.Draining = true
		next.Since = prev.Since
		if !prev.Draining {
			next.Since = wire.Time{Time: time.Now()}
		}
	}
	if err := c.saveDrain(next); err != nil {
		c.drain.mu.Unlock()
		return prev, nil, err
	}
	c.drain.cur = next
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
func (c *Consumer) saveDrain(st wire.DrainState) error {
	f := c.cfg.DrainFile
	if f == "" {
		return nil
	}
	if !st.Draining {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove drain state: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return fmt.Errorf("drain state dir: %w", err)
	}
	data, _ := json.Marshal(st)
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write drain state: %w", err)
	}
	if err := os.Rename(tmp, f); err != nil {
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
