package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// endGrace is how long a command that has its reply still waits for its
// end event, should the narration arrive after the reply (it is published
// before it, so this only matters when something reordered them).
const endGrace = 500 * time.Millisecond

// Spawn starts a worker on hive. It subscribes to the job's narration and
// result before it sends the command, calls onEvent (may be nil) with each
// event of the command in order, and returns once the reply or the job
// result is there, whichever comes first: a reply can be lost while the
// result still arrives. The ids in req are generated when empty.
//
// Without a deadline in ctx it waits the client's timeout, or for wait
// ready DefaultReadyTimeout (the request's WaitTimeout plus the client's
// timeout when set).
func (c *Client) Spawn(ctx context.Context, hive string, req SpawnRequest, onEvent func(Event)) (Reply[SpawnResult], error) {
	fresh := req.JobID == ""
	if fresh {
		req.JobID = uuid.NewString()
	}
	if req.CommandID == "" {
		req.CommandID = uuid.NewString()
	}
	d := c.timeout
	if req.Wait == "ready" {
		d = max(d, DefaultReadyTimeout)
		if req.WaitTimeout > 0 {
			d = req.WaitTimeout + c.timeout
		}
	}
	j := job{hive: hive, cmd: subjects.Spawn, jobID: req.JobID, commandID: req.CommandID, fresh: fresh, timeout: d}
	return runJob[SpawnResult](ctx, c, j, req.wire(), onEvent)
}

// Delete stops worker workerID of hive: SIGTERM to its process group, then
// SIGKILL when grace runs out (a negative grace leaves it to the agent,
// 5 s). Narration and the wait for the answer work as in Spawn.
func (c *Client) Delete(ctx context.Context, hive, workerID string, grace time.Duration, onEvent func(Event)) (Reply[DeleteResult], error) {
	b := wire.DeleteRequest{Envelope: wire.Envelope{JobID: uuid.NewString(), CommandID: uuid.NewString()}, WorkerID: workerID}
	d := c.timeout
	if grace >= 0 {
		ms := int(grace.Milliseconds())
		b.GraceMS = &ms
		// The agent waits the grace, then up to a few seconds after SIGKILL.
		d = max(d, grace+c.timeout)
	}
	j := job{hive: hive, cmd: subjects.Delete, jobID: b.JobID, commandID: b.CommandID, fresh: true, timeout: d}
	return runJob[DeleteResult](ctx, c, j, b, onEvent)
}

// job is one command sent with its narration followed.
type job struct {
	hive, cmd, jobID, commandID string
	// fresh is true when the job id was generated here: its first event is seq 1.
	fresh   bool
	timeout time.Duration
}

type requestOutcome struct {
	msg *nats.Msg
	err error
}

// runJob sends one command and follows its job subjects until its reply
// or result arrives.
func runJob[T any](ctx context.Context, c *Client, j job, body any, onEvent func(Event)) (Reply[T], error) {
	var zero Reply[T]
	subj, err := commandSubject(j.hive, j.cmd)
	if err != nil {
		return zero, err
	}
	resultSubj, err := subjects.JobResult(j.jobID)
	if err != nil {
		return zero, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	narrSubj, _ := subjects.JobNarration(j.jobID)
	if err := subjects.ValidToken(j.commandID); err != nil {
		return zero, fmt.Errorf("%w: command_id %q: %w", ErrInvalid, j.commandID, err)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return zero, fmt.Errorf("encode %s request: %w", j.cmd, err)
	}
	ctx, cancel := bound(ctx, j.timeout)
	defer cancel()
	ctx, done := c.guard(ctx, subj)
	defer done()

	// One channel for both subjects keeps their wire order: the agent
	// publishes the end event before the result.
	msgs := make(chan *nats.Msg, 4096)
	watched := []string{resultSubj}
	if onEvent != nil {
		watched = append(watched, narrSubj)
	}
	for _, s := range watched {
		sub, err := c.nc.ChanSubscribe(s, msgs)
		if err != nil {
			return zero, fmt.Errorf("subscribe %s: %w", s, err)
		}
		defer sub.Unsubscribe()
	}
	// The server must have the subscriptions before the command goes out,
	// or the first events could be missed.
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return zero, noAgent(ctx, "subscribe "+resultSubj, err)
	}

	replies := make(chan requestOutcome, 1)
	reqCtx, stopRequest := context.WithCancel(ctx)
	defer stopRequest()
	go func() {
		m, err := c.nc.RequestWithContext(reqCtx, subj, data)
		replies <- requestOutcome{m, err}
	}()

	ord := newOrderer(onEvent, j.fresh)
	take := func(m *nats.Msg) []byte {
		if m.Subject == resultSubj {
			if ownResult(m.Data, j.commandID) {
				return m.Data
			}
			return nil
		}
		var ev Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.CommandID == j.commandID {
			ord.add(ev)
		}
		return nil
	}
	var final []byte
	for final == nil {
		select {
		case m := <-msgs:
			final = take(m)
		case o := <-replies:
			if o.err != nil {
				// A lost reply never ends the request: it waits for ctx,
				// so an error here is no responders, the deadline, or a
				// closed connection, after which no result comes either.
				ord.flush()
				return zero, j.noAnswer(ctx, subj, o.err, ord)
			}
			final = o.msg.Data
		case <-ctx.Done():
			ord.flush()
			return zero, j.noAnswer(ctx, subj, ctx.Err(), ord)
		}
	}
	// Narration published before the answer is already queued; a moment
	// more for an end event that something delayed.
	grace := time.NewTimer(endGrace)
	defer grace.Stop()
	for onEvent != nil && !ord.end {
		select {
		case m := <-msgs:
			take(m)
		case <-grace.C:
			ord.end = true
		case <-ctx.Done():
			ord.end = true
		}
	}
	ord.flush()
	return decodeReply[T](subj, final)
}

// noAnswer explains a job without an answer; when its narration was heard
// the agent took the command, and its outcome will be on the result subject.
// A command sent and not answered in time is an *UnansweredError: it may
// still run.
func (j job) noAnswer(ctx context.Context, subj string, err error, ord *orderer) error {
	e := noAgent(ctx, subj, err)
	if ord.seen > 0 && errors.Is(e, ErrNoAgent) {
		e = fmt.Errorf("%w (hive %s took job %s and narrated %d events; its outcome goes to job.%s.result)",
			e, j.hive, j.jobID, ord.seen, j.jobID)
	}
	if errors.Is(e, ErrNoAgent) && errors.Is(e, context.DeadlineExceeded) {
		return &UnansweredError{Hive: j.hive, Subject: subj, JobID: j.jobID, CommandID: j.commandID, Err: e}
	}
	return e
}

// UnansweredError is a command that was sent (something serves its
// subject) but not answered before the deadline: an agent that is slow,
// stopped (SIGSTOP), or cut off from NATS may still run it, and its
// outcome then goes to job.<JobID>.result (and HIVE_JOBS, where the agent
// stores outcomes). It unwraps to Err, which wraps ErrNoAgent.
type UnansweredError struct {
	Hive, Subject, JobID, CommandID string
	Err                             error
}

func (e *UnansweredError) Error() string { return e.Err.Error() }

func (e *UnansweredError) Unwrap() error { return e.Err }

// ownResult reports whether a job result belongs to commandID: commands
// may share a job id.
func ownResult(data []byte, commandID string) bool {
	var r wire.Reply[json.RawMessage]
	return json.Unmarshal(data, &r) == nil && r.CommandID == commandID
}

// orderer hands events on in seq order. NATS keeps one publisher's order
// on one subscription, so holding an event back is a safety net; what is
// held at the end is handed on in order rather than lost.
type orderer struct {
	deliver func(Event)
	next    uint64 // 0: not known yet (a job id chosen by the caller)
	held    map[uint64]Event
	seen    int
	end     bool
}

func newOrderer(deliver func(Event), fresh bool) *orderer {
	o := &orderer{deliver: deliver, held: map[uint64]Event{}}
	if fresh {
		o.next = 1
	}
	return o
}

func (o *orderer) add(e Event) {
	if o.deliver == nil {
		return
	}
	o.seen++
	if o.next == 0 {
		o.next = e.Seq
	}
	if e.Seq < o.next {
		o.emit(e) // a late or repeated event: better shown than lost
		return
	}
	o.held[e.Seq] = e
	for {
		h, ok := o.held[o.next]
		if !ok {
			return
		}
		delete(o.held, o.next)
		o.next++
		o.emit(h)
	}
}

func (o *orderer) flush() {
	seqs := make([]uint64, 0, len(o.held))
	for s := range o.held {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		o.emit(o.held[s])
		delete(o.held, s)
	}
}

func (o *orderer) emit(e Event) {
	if e.End() {
		o.end = true
	}
	o.deliver(e)
}
