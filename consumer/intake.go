package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/subjects"
)

// JetStreamConfig turns on durable intake (commands from stream
// HIVE_INTAKE) and stored outcomes (results acknowledged by HIVE_JOBS).
type JetStreamConfig struct {
	// JS is a JetStream context on the consumer's own connection.
	JS      jetstream.JetStream
	Streams StreamsConfig
	// NoCreate makes the agent only use streams and a consumer that exist
	// (for accounts that may not create them); by default it creates them.
	NoCreate bool
	// Required makes Start fail when JetStream or the streams cannot be
	// used; otherwise the agent logs why and serves request/reply only.
	Required bool
	// MaxInFlight is how many of Config.MaxInFlight the intake may take at
	// once (default half of it, at least 1). Intake commands wait for a
	// slot instead of being refused, so request/reply always keeps the rest.
	MaxInFlight int
}

// ackTimeout bounds the wait for the server to confirm an acknowledgement.
const ackTimeout = 5 * time.Second

// intake runs the commands of the hive's durable intake consumer through
// the consumer's one run path. Commands naming one worker run one at a
// time in stream order; the others run concurrently.
type intake struct {
	c         *Consumer
	log       *slog.Logger
	store     *jobStore
	stream    jetstream.Stream // HIVE_INTAKE
	cons      jetstream.Consumer
	prefix    string // hive.<hive>.intake.
	filter    string
	ackWait   time.Duration
	slots     chan struct{} // spawns, deletes
	reads     chan struct{} // list, get, logs and commands answered at once
	js        jetstream.JetStream
	streams   StreamsConfig
	mayCreate bool

	// ctx ends when the consumer closes: nothing new starts after it.
	ctx    context.Context
	cancel context.CancelFunc
	cc     jetstream.ConsumeContext // guarded by mu
	ticker chan struct{}            // closed to stop the in-progress ticker
	kick   chan struct{}            // asks the ticker to check the consumer now
	tickWG sync.WaitGroup

	mu    sync.Mutex
	held  map[uint64]*item // by stream sequence: queued or running
	lanes map[string]*lane // by worker id
	// orphans are commands an earlier run received and never acknowledged;
	// they come again after the ack wait, and later commands of their
	// worker wait for them.
	orphans map[uint64]string
	since   time.Time
	// created is when the consumer consumed from was created; another
	// time means it was deleted and created again.
	created time.Time
	// replacedUpTo is the highest stream sequence received from a consumer
	// that was since replaced: its commands may have run here, acknowledged
	// to the lost consumer, so they are checked like redeliveries.
	replacedUpTo, lastSeq uint64
	gone                  bool // the consumer is missing and was not created
}

// item is one intake command held by this agent.
type item struct {
	seq     uint64
	key     string // worker id; "" runs without a lane
	kind    string
	ids     intakeIDs
	in      inbound
	msg     jetstream.Msg // the latest delivery
	again   bool          // delivered before (to this agent or an earlier one)
	running bool
	// waiting: a spawn whose worker process runs and which waits for it
	// (alive, ready); the worker's reads and a delete may pass it.
	waiting bool
	// deletedBy is the job id of the intake delete that passed this
	// waiting spawn, ending its wait.
	deletedBy string
	// borrows: a delete that passed a waiting spawn; it runs on that
	// spawn's admission slot rather than waiting for one.
	borrows bool
}

// startIntake sets up the streams and starts consuming; any error leaves
// the agent serving request/reply only.
func (c *Consumer) startIntake(ctx context.Context) error {
	jc := c.cfg.JetStream
	rep, err := SetupStreams(ctx, jc.JS, c.cfg.HiveID, jc.Streams, !jc.NoCreate)
	for _, w := range rep.Warnings {
		c.log.Warn("JetStream configuration differs (left unchanged)", "what", w)
	}
	if len(rep.Created) > 0 {
		c.log.Info("created JetStream streams and consumer", "created", strings.Join(rep.Created, ", "))
	}
	if err != nil {
		return err
	}
	stream, err := jc.JS.Stream(ctx, IntakeStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", IntakeStream, err)
	}
	jobs, err := jc.JS.Stream(ctx, JobsStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", JobsStream, err)
	}
	cons, err := jc.JS.Consumer(ctx, IntakeStream, ConsumerName(c.cfg.HiveID))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", ConsumerName(c.cfg.HiveID), err)
	}
	filter, _ := intakeFilter(c.cfg.HiveID)
	share := jc.MaxInFlight
	if share == 0 {
		share = max(1, c.cfg.MaxInFlight/2)
	}
	i := &intake{
		c: c, log: c.log, store: &jobStore{js: jc.JS, stream: jobs, log: c.log}, stream: stream, cons: cons,
		prefix: strings.TrimSuffix(filter, ">"), filter: filter, ackWait: cons.CachedInfo().Config.AckWait,
		slots: make(chan struct{}, share), reads: make(chan struct{}, share), ticker: make(chan struct{}),
		kick: make(chan struct{}, 1), js: jc.JS, streams: jc.Streams, mayCreate: !jc.NoCreate,
		created: cons.CachedInfo().Created,
		held:    map[uint64]*item{}, lanes: map[string]*lane{}, orphans: map[uint64]string{}, since: time.Now(),
	}
	i.ctx, i.cancel = context.WithCancel(context.Background())
	if err := i.findOrphans(ctx); err != nil {
		return err
	}
	orphans := len(i.orphans)
	c.out.setStore(i.store)
	i.cc, err = i.consume(cons)
	if err != nil {
		c.out.setStore(nil)
		return fmt.Errorf("consume %s: %w", ConsumerName(c.cfg.HiveID), err)
	}
	i.tickWG.Add(1)
	go i.tick()
	c.intake = i
	c.liveIntake.Store(i)
	c.log.Info("taking durable intake commands", "subjects", filter, "stream", IntakeStream,
		"consumer", ConsumerName(c.cfg.HiveID), "ack_wait", i.ackWait, "max_in_flight", share,
		"unacknowledged_from_earlier_run", orphans, "results_stored_in", JobsStream)
	return nil
}

// findOrphans lists what an earlier run was given and never acknowledged:
// in a work-queue stream, whatever of the consumer's delivered range is
// still there.
func (i *intake) findOrphans(ctx context.Context) error {
	info, err := i.cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("consumer %s info: %w", i.cons.CachedInfo().Name, err)
	}
	for seq := info.AckFloor.Stream + 1; info.NumAckPending > 0 && seq <= info.Delivered.Stream; {
		m, err := i.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(i.filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("read unacknowledged intake commands: %w", err)
		}
		if m.Sequence > info.Delivered.Stream {
			break
		}
		i.orphans[m.Sequence] = idsOf(i.kindOf(m.Subject), m.Data, m.Header, m.Sequence).workerID
		seq = m.Sequence + 1
	}
	return nil
}

func (i *intake) kindOf(subject string) string { return strings.TrimPrefix(subject, i.prefix) }

// receive takes one delivery from the consumer, in stream order.
func (i *intake) receive(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		i.log.Error("intake message without JetStream metadata; terminating it", "subject", msg.Subject(), "err", err)
		msg.Term()
		return
	}
	seq := md.Sequence.Stream
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.ctx.Err() != nil {
		msg.Nak() // closing: for the next agent
		return
	}
	if it := i.held[seq]; it != nil {
		it.msg = msg // delivered again while held here: one run, the latest handle
		return
	}
	kind := i.kindOf(msg.Subject())
	ids := idsOf(kind, msg.Data(), msg.Headers(), seq)
	it := &item{seq: seq, key: ids.workerID, kind: kind, ids: ids, msg: msg,
		in: inbound{subject: msg.Subject(), data: ids.body,
			via: fmt.Sprintf(" from the durable intake (stream sequence %d, delivery %d)", seq, md.NumDelivered)}}
	if ids.undecodable {
		it.in.jobID, it.in.commandID = ids.jobID, ids.commandID
	}
	_, orphan := i.orphans[seq]
	delete(i.orphans, seq)
	it.again = orphan || md.NumDelivered > 1 || seq <= i.replacedUpTo
	i.lastSeq = max(i.lastSeq, seq)
	i.held[seq] = it
	if it.key == "" {
		it.running = true
		go i.run(it)
		return
	}
	l := i.lanes[it.key]
	if l == nil {
		l = &lane{}
		i.lanes[it.key] = l
	}
	at, _ := slices.BinarySearchFunc(l.queue, seq, func(x *item, s uint64) int { return int64Cmp(x.seq, s) })
	l.queue = slices.Insert(l.queue, at, it)
	i.pump(it.key)
}

func int64Cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// run executes one command, stores its result, then acknowledges it.
func (i *intake) run(it *item) {
	defer i.done(it)
	// Held (in progress, unacknowledged) while the agent drains; later
	// commands of its worker wait behind it in its lane.
	if !i.c.holdWhileDraining(i.ctx, it.kind) || !i.acquire(it) {
		i.nak(it)
		return
	}
	defer i.release(it)
	ctx := i.c.runCtx
	it.in.after = i.after(it)
	if it.again {
		// Exactly once: a command whose result is stored is done; one that
		// is not continues its job's narration and recognises its own work.
		if body, err := i.store.storedResult(ctx, it.ids.jobID, it.ids.commandID); err != nil {
			i.log.Warn("read stored result of a redelivered intake command", "job_id", it.ids.jobID, "err", err)
		} else if body != nil {
			i.log.Info("intake command delivered again; its result is stored already, acknowledging it",
				"job_id", it.ids.jobID, "command_id", it.ids.commandID, "seq", it.seq)
			i.ack(it)
			return
		}
		it.in.afterSeq = i.store.lastSeq(ctx, it.ids.jobID)
	}
	o := i.c.execute(it.kind, it.in, nil)
	defer i.c.record(o)
	if ctx.Err() != nil {
		// Interrupted by the agent's shutdown: the next agent runs it again
		// (and finds what this one started) rather than storing "interrupted".
		i.log.Warn("intake command interrupted by shutdown; it will be delivered again", "job_id", o.env.JobID, "seq", it.seq)
		i.nak(it)
		return
	}
	subj, err := subjects.JobResult(o.env.JobID)
	if err != nil {
		i.log.Error("result subject", "job_id", o.env.JobID, "err", err)
		i.ack(it)
		return
	}
	msg := &nats.Msg{Subject: subj, Data: o.body}
	if err := i.store.store(ctx, msg); err != nil {
		// Live listeners still get it.
		i.c.out.publish(msg)
		if ctx.Err() != nil {
			// Shutdown: it stays unacknowledged and its next delivery finds
			// what this one did.
			i.log.Error("result not stored; the intake command stays unacknowledged", "subject", subj, "err", err)
			return
		}
		// HIVE_JOBS keeps refusing it: holding the command would hold its
		// worker's later commands and an intake slot for good.
		i.c.stats.notStored.Add(1)
		i.log.Error("result not stored in "+JobsStream+"; published it and acknowledged the command anyway, so it cannot be read back later",
			"job_id", o.env.JobID, "command_id", o.env.CommandID, "subject", subj, "seq", it.seq, "err", err)
	}
	i.ack(it)
}

func (i *intake) latest(it *item) jetstream.Msg {
	i.mu.Lock()
	defer i.mu.Unlock()
	return it.msg
}

func (i *intake) ack(it *item) {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if err := i.latest(it).DoubleAck(ctx); err != nil {
		i.log.Warn("acknowledge intake command; its next delivery will find its stored result", "seq", it.seq, "err", err)
	}
}

// nak gives a command back for the next agent (or this one) at once.
func (i *intake) nak(it *item) {
	if err := i.latest(it).Nak(); err != nil {
		i.log.Debug("give back intake command", "seq", it.seq, "err", err)
	}
}

// stop ends the intake's deliveries and gives back what has not started;
// commands that run are finished by Close's wait.
func (i *intake) stop() {
	i.mu.Lock()
	i.cancel() // under mu: a consumer created again after this is not used
	cc := i.cc
	i.mu.Unlock()
	cc.Stop()
	i.mu.Lock()
	var queued []*item
	for _, it := range i.held {
		if !it.running {
			queued = append(queued, it)
		}
	}
	i.mu.Unlock()
	slices.SortFunc(queued, func(a, b *item) int { return int64Cmp(a.seq, b.seq) })
	for _, it := range queued {
		i.nak(it)
	}
}

// finish stops the in-progress ticker once nothing runs any more.
func (i *intake) finish() {
	close(i.ticker)
	i.tickWG.Wait()
	i.c.out.setStore(nil)
}
