package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// Drain tells hive's agent to start no workers (spawns and restarts
// answer draining; queued intake spawns wait) and, with stopWorkers, to
// delete every worker once deadline has passed. Narration goes to onEvent
// as in Spawn; the answer comes after the workers were stopped.
func (c *Client) Drain(ctx context.Context, hive string, stopWorkers bool, deadline time.Duration, onEvent func(Event)) (Reply[DrainResult], error) {
	b := wire.DrainRequest{Envelope: wire.Envelope{JobID: uuid.NewString(), CommandID: uuid.NewString()}, StopWorkers: stopWorkers}
	if deadline > 0 {
		ms := deadline.Milliseconds()
		b.DeadlineMS = &ms
	}
	// Each worker gets up to its grace and then some after SIGKILL.
	return agentJob[DrainResult](ctx, c, hive, subjects.Drain, b.JobID, b, deadline+c.timeout+time.Minute, onEvent)
}

// Resume ends a drain of hive.
func (c *Client) Resume(ctx context.Context, hive string, onEvent func(Event)) (Reply[DrainResult], error) {
	b := wire.ResumeRequest{Envelope: wire.Envelope{JobID: uuid.NewString(), CommandID: uuid.NewString()}}
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
