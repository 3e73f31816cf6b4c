package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/subjects"
)

// CodeDraining is the error code of a spawn or restart sent to a hive
// that drains (PROTOCOL v1.2 "Drain").
const CodeDraining = "draining"

// DrainResult is the result of agent.drain and agent.resume.
type DrainResult struct {
	Draining    bool   `json:"draining"`
	StopWorkers bool   `json:"stop_workers,omitempty"`
	DeadlineMS  int64  `json:"deadline_ms,omitempty"`
	Since       string `json:"since,omitempty"`
	// Stopped lists the workers a drain with stop_workers deleted.
	Stopped []string `json:"stopped,omitempty"`
	// Resumed is true when a resume ended the drain before its deadline.
	Resumed bool `json:"resumed,omitempty"`
}

// Drain tells hive's agent to start no workers (spawns and restarts
// answer draining; queued intake spawns wait) and, with stopWorkers, to
// delete every worker once deadline has passed. Narration goes to onEvent
// as in Spawn; the answer comes after the workers were stopped.
func (c *Client) Drain(ctx context.Context, hive string, stopWorkers bool, deadline time.Duration, onEvent func(Event)) (Reply[DrainResult], error) {
	type body struct {
		JobID       string `json:"job_id"`
		CommandID   string `json:"command_id"`
		StopWorkers bool   `json:"stop_workers,omitempty"`
		DeadlineMS  int64  `json:"deadline_ms,omitempty"`
	}
	b := body{JobID: uuid.NewString(), CommandID: uuid.NewString(), StopWorkers: stopWorkers, DeadlineMS: deadline.Milliseconds()}
	// Each worker gets up to its grace and then some after SIGKILL.
	return agentJob[DrainResult](ctx, c, hive, subjects.Drain, b.JobID, b, deadline+c.timeout+time.Minute, onEvent)
}

// Resume ends a drain of hive.
func (c *Client) Resume(ctx context.Context, hive string, onEvent func(Event)) (Reply[DrainResult], error) {
	type body struct {
		JobID     string `json:"job_id"`
		CommandID string `json:"command_id"`
	}
	b := body{JobID: uuid.NewString(), CommandID: uuid.NewString()}
	return agentJob[DrainResult](ctx, c, hive, subjects.Resume, b.JobID, b, c.timeout, onEvent)
}

// agentJob sends an agent command (hive.<hive>.agent.<cmd>) and prints its
// narration as it comes.
func agentJob[T any](ctx context.Context, c *Client, hive, cmd, jobID string, body any, timeout time.Duration, onEvent func(Event)) (Reply[T], error) {
	var r Reply[T]
	subj, err := subjects.AgentCommand(hive, cmd)
	if err != nil {
		return r, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return r, fmt.Errorf("encode %s request: %w", cmd, err)
	}
	ctx, cancel := bound(ctx, timeout)
	defer cancel()
	ctx, done := c.guard(ctx, subj) // a refused publish ends it at once
	defer done()
	events := make(chan *nats.Msg, 1024)
	if onEvent != nil {
		narr, _ := subjects.JobNarration(jobID)
		sub, err := c.nc.ChanSubscribe(narr, events)
		if err != nil {
			return r, fmt.Errorf("subscribe %s: %w", narr, err)
		}
		defer sub.Unsubscribe()
	}
	replies := make(chan requestOutcome, 1)
	go func() {
		msg, err := c.nc.RequestWithContext(ctx, subj, data)
		replies <- requestOutcome{msg, err}
	}()
	// Narration is handed on from this goroutine, in order, until the
	// reply; the end event, published before it, is waited for a little.
	var out requestOutcome
	var grace <-chan time.Time // set once the reply is there
	ended := false
	for {
		select {
		case m := <-events:
			var e Event
			if json.Unmarshal(m.Data, &e) != nil {
				continue
			}
			onEvent(e)
			ended = ended || e.End()
			if ended && out.msg != nil {
				return decodeReply[T](subj, out.msg.Data)
			}
		case out = <-replies:
			if out.err != nil {
				return r, noAgent(ctx, subj, out.err)
			}
			if onEvent == nil || ended {
				return decodeReply[T](subj, out.msg.Data)
			}
			grace = time.After(endGrace)
		case <-grace:
			return decodeReply[T](subj, out.msg.Data)
		}
	}
}
