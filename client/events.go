package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/subjects"
)

// EventsStream is the JetStream stream that keeps every hive's events
// (PROTOCOL v1.2 "Events, live and after the fact").
const EventsStream = "HIVE_EVENTS"

// HiveEvent is one event of hive.<hive>.events.>: a worker's start, exit,
// stop, health, an agent's drain, an inventory.
type HiveEvent struct {
	// Time is when the server stored it (replayed) or it arrived (live).
	Time   time.Time `json:"time"`
	HiveID string    `json:"hive_id"`
	// Kind is the subject after "events.", e.g. worker.started, agent.draining, inventory.
	Kind     string          `json:"kind"`
	WorkerID string          `json:"worker_id,omitempty"`
	Subject  string          `json:"subject"`
	Data     json.RawMessage `json:"data"`
}

// EventsOptions say which events Events hands on.
type EventsOptions struct {
	// Hive limits them to one hive; empty: every hive.
	Hive string
	// Since, when positive, replays what HIVE_EVENTS kept of the last Since first.
	Since time.Duration
	// Follow keeps handing on new events until ctx ends; without Since,
	// Events always follows.
	Follow bool
}

// Events hands each event to onEvent in order: with Since, those kept in
// HIVE_EVENTS since then, read until caught up (and then, with Follow,
// every new one from the stream, so nothing is missed or doubled);
// without Since, live events until ctx ends. It returns nil when ctx ends
// or the replay caught up without Follow.
func (c *Client) Events(ctx context.Context, o EventsOptions, onEvent func(HiveEvent)) error {
	filter := subjects.AllEvents
	if o.Hive != "" {
		f, err := subjects.Events(o.Hive)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		filter = f
	}
	if o.Since > 0 {
		return c.replayEvents(ctx, filter, time.Now().Add(-o.Since), o.Follow, onEvent)
	}
	ctx, done := c.guard(ctx, filter) // a refused subscription ends it at once
	defer done()
	msgs := make(chan *nats.Msg, 1024)
	sub, err := c.nc.ChanSubscribe(filter, msgs)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	defer sub.Unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return refused(ctx)
		case m := <-msgs:
			onEvent(hiveEvent(m.Subject, m.Data, time.Now()))
		}
	}
}

func (c *Client) replayEvents(ctx context.Context, filter string, since time.Time, follow bool, onEvent func(HiveEvent)) error {
	ctx, done := c.guard(ctx, "$JS.API.STREAM.INFO."+EventsStream) // a refused read ends it at once
	defer done()
	js, err := c.jetStream()
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	rctx, cancel := bound(ctx, c.timeout)
	defer cancel()
	stream, err := js.Stream(rctx, EventsStream)
	if perr := refused(ctx); perr != nil {
		return perr
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s does not exist: events are kept only where an agent (or hive-agent setup) created it: %w", EventsStream, err)
		}
		return fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	cons, err := stream.OrderedConsumer(rctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since})
	if err != nil {
		return fmt.Errorf("read %s: %w", EventsStream, err)
	}
	for {
		wait := time.Second
		if follow {
			wait = 5 * time.Second
		}
		fctx, fcancel := context.WithTimeout(ctx, wait)
		batch, err := cons.Fetch(256, jetstream.FetchContext(fctx))
		if err != nil {
			fcancel()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", EventsStream, err)
		}
		n := 0
		var pending uint64
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			at := time.Now()
			if err == nil {
				at, pending = md.Timestamp, md.NumPending
			}
			onEvent(hiveEvent(m.Subject(), m.Data(), at))
		}
		fcancel()
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", EventsStream, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if !follow && (n == 0 || pending == 0) {
			return nil
		}
	}
}

// hiveEvent reads an event message: hive.<hive>.events.<kind...>.
func hiveEvent(subject string, data []byte, at time.Time) HiveEvent {
	e := HiveEvent{Time: at.UTC(), Subject: subject, Data: json.RawMessage(data)}
	parts := strings.SplitN(subject, ".", 4)
	if len(parts) == 4 {
		e.HiveID, e.Kind = parts[1], parts[3]
	}
	var body struct {
		WorkerID string `json:"worker_id"`
	}
	if json.Unmarshal(data, &body) == nil {
		e.WorkerID = body.WorkerID
	}
	if !json.Valid(data) {
		e.Data, _ = json.Marshal(string(data))
	}
	return e
}
