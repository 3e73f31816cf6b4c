package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// consume starts taking deliveries from cons.
func (i *intake) consume(cons jetstream.Consumer) (jetstream.ConsumeContext, error) {
	return cons.Consume(i.receive,
		jetstream.PullMaxMessages(64), jetstream.PullExpiry(10*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			switch {
			case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
				i.log.Warn("intake consumer", "err", err)
				i.checkSoon()
			case errors.Is(err, jetstream.ErrNoHeartbeat):
				i.log.Debug("intake consumer", "err", err)
				i.checkSoon() // a deleted consumer sends no heartbeats either
			case errors.Is(err, nats.ErrConnectionClosed):
				i.log.Debug("intake consumer", "err", err)
			default:
				i.log.Warn("intake consumer", "err", err)
			}
		}))
}

// checkSoon asks the ticker to check the consumer now.
func (i *intake) checkSoon() {
	select {
	case i.kick <- struct{}{}:
	default:
	}
}

// tick tells the server every held command is still being worked on
// (queued behind its worker or running: a wait ready takes minutes),
// forgets orphans that are gone from the stream, and checks that the
// consumer is still there.
func (i *intake) tick() {
	defer i.tickWG.Done()
	every := max(i.ackWait/3, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-i.ticker:
			return
		case <-i.kick:
			i.checkConsumer()
			continue
		case <-t.C:
		}
		i.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(i.held))
		for _, it := range i.held {
			msgs = append(msgs, it.msg)
		}
		var orphans []uint64
		if time.Since(i.since) > 2*i.ackWait+10*time.Second {
			for seq := range i.orphans {
				orphans = append(orphans, seq)
			}
		}
		i.mu.Unlock()
		for _, m := range msgs {
			m.InProgress()
		}
		for _, seq := range orphans {
			i.forgetIfGone(seq)
		}
		i.checkConsumer()
	}
}

// checkConsumer finds a consumer deleted while the agent runs, creates it
// again (unless the agent may not create), and consumes from the one
// that is there now.
func (i *intake) checkConsumer() {
	if i.ctx.Err() != nil || !i.js.Conn().IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(i.ctx, 5*time.Second)
	defer cancel()
	name := ConsumerName(i.c.cfg.HiveID)
	cons, err := i.js.Consumer(ctx, IntakeStream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if !i.mayCreate {
			if !i.gone {
				i.log.Error("the intake consumer is gone and creating it is off (--no-jetstream-create): intake commands wait until an operator creates it (hive-agent setup)", "consumer", name)
				i.gone = true
			}
			return
		}
		var rep SetupReport
		if err = ensureConsumer(ctx, i.js, i.c.cfg.HiveID, i.streams, true, &rep); err != nil {
			i.log.Error("create the deleted intake consumer again", "consumer", name, "err", err)
			return
		}
		if cons, err = i.js.Consumer(ctx, IntakeStream, name); err != nil {
			i.log.Error("created the deleted intake consumer again, but cannot read it", "consumer", name, "err", err)
			return
		}
		i.log.Warn("the intake consumer was deleted while the agent ran; created it again", "consumer", name, "stream", IntakeStream)
	} else if err != nil {
		i.log.Debug("check the intake consumer", "consumer", name, "err", err)
		return
	}
	i.gone = false
	created := cons.CachedInfo().Created
	if created.Equal(i.created) {
		return
	}
	cc, err := i.consume(cons)
	if err != nil {
		i.log.Error("consume from the new intake consumer", "consumer", name, "err", err)
		return
	}
	i.mu.Lock()
	if i.ctx.Err() != nil { // stop ran meanwhile and stopped the old one
		i.mu.Unlock()
		cc.Stop()
		return
	}
	old := i.cc
	i.cc, i.cons, i.created = cc, cons, created
	// What the lost consumer delivered may have been acknowledged to it
	// only: the new one delivers it again as new.
	i.replacedUpTo = i.lastSeq
	i.mu.Unlock()
	old.Stop()
	i.log.Info("taking durable intake commands from the new consumer", "consumer", name,
		"commands_checked_for_stored_results_up_to_seq", i.replacedUpTo)
}

// forgetIfGone drops an orphan that left the stream without coming here
// (acknowledged elsewhere, purged), so its worker's later commands go on.
func (i *intake) forgetIfGone(seq uint64) {
	ctx, cancel := context.WithTimeout(i.ctx, 5*time.Second)
	defer cancel()
	if _, err := i.stream.GetMsg(ctx, seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if key, ok := i.orphans[seq]; ok {
		delete(i.orphans, seq)
		i.pump(key)
	}
}

// consumer is the intake consumer consumed from now; it is replaced when
// the server lost it and it was created again.
func (i *intake) consumer() jetstream.Consumer {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cons
}
