package consumer

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// RepublishWindow is how far back before a lost connection was noticed
// the results (and replies) are published again after the reconnect. It
// matches the bound on noticing a server that stopped answering (ping
// interval 5 s, 2 pings outstanding): whatever went out since the server's
// last sign of life may have been lost with the connection.
const RepublishWindow = 15 * time.Second

// DefaultRepublishMaxBytes bounds what the outbox keeps, whatever the
// window: 64 MiB is about 200,000 small results and replies. When the
// window holds that much, the agent takes no new commands (they answer
// busy) until the oldest leave it: nothing that ran is forgotten unsent.
const DefaultRepublishMaxBytes = 64 << 20

// outbox publishes results and replies and keeps them for RepublishWindow,
// so that those a dead connection swallowed are published again after the
// reconnect. Publishing is at least once: a consumer may see a result
// twice and deduplicates by command_id. Publishes made while disconnected
// are kept too: nats.go buffers them and sends them on reconnect, but
// drops that buffer when the write to the new server fails.
type outbox struct {
	nc *nats.Conn
	// send publishes on nc; a test replaces it to hold a publish under way.
	send     func(*nats.Msg) error
	log      *slog.Logger
	window   time.Duration
	maxBytes int

	mu      sync.Mutex
	entries []*sent // in publish order
	bytes   int
	// lostAt is when the current disconnection was noticed; zero while connected.
	lostAt      time.Time
	republished uint64
	// full: the window holds maxBytes; no new commands until it drains
	// below three quarters of it.
	full bool
	// store, when set, publishes a result so that the stream that keeps it
	// acknowledges it (HIVE_JOBS); nil without JetStream.
	store storer
}

// storer publishes a message and reports, later, whether a stream stored it.
type storer interface {
	// prepare gives msg, before the outbox keeps it, what every copy of
	// it carries (its Nats-Msg-Id): from then on a reconnect may read it
	// while it is being published.
	prepare(msg *nats.Msg)
	// publishAsync must not change msg (it publishes a copy).
	publishAsync(msg *nats.Msg) (stored <-chan bool, err error)
	// mirror publishes what stores a plainly published job message, where
	// the stream does not capture it by its subject (fleet.go).
	mirror(msg *nats.Msg)
}

// sent is one kept message.
type sent struct {
	msg *nats.Msg
	at  time.Time
	// failed: the publish returned an error, so the message never left.
	failed bool
	// stored: the message is known to be stored (acknowledged by a
	// JetStream stream) and is never published again.
	stored bool
}

func newOutbox(nc *nats.Conn, log *slog.Logger, window time.Duration, maxBytes int) *outbox {
	return &outbox{nc: nc, send: nc.PublishMsg, log: log, window: window, maxBytes: maxBytes}
}

// room reports whether the outbox can keep more: false while it holds
// maxBytes of messages that may still have to be published again. The
// consumer then takes no new commands. It says so once when it fills and
// once when it has room again.
func (o *outbox) room() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.prune(time.Now())
	return !o.full
}

// held is how many bytes the outbox keeps.
func (o *outbox) held() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes
}

// publish publishes msg and keeps it. The returned entry is the hook for a
// publisher that learns the message was stored: it calls markStored.
func (o *outbox) publish(msg *nats.Msg) (*sent, error) {
	e := o.keep(msg)
	err := o.send(msg)
	o.sendFailed(e, err)
	return e, err
}

// sendFailed records that e's publish returned err, if it did: the
// message never left and is published again after the next reconnect (a
// write that timed out ends the connection: CloseOnWriteTimeout).
func (o *outbox) sendFailed(e *sent, err error) {
	if err == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	e.failed = true
}

// publishResult publishes a job result: acknowledged by its stream when a
// store is set, so that once stored it is never published again; plainly
// otherwise.
func (o *outbox) publishResult(msg *nats.Msg) (*sent, error) {
	o.mu.Lock()
	st := o.store
	o.mu.Unlock()
	if st == nil {
		return o.publish(msg)
	}
	st.prepare(msg)
	e := o.keep(msg)
	stored, err := st.publishAsync(msg)
	o.sendFailed(e, err)
	if err == nil {
		go func() {
			if <-stored {
				o.markStored(e)
			}
		}()
	}
	return e, err
}

// mirror has a plainly published job message stored, when a store is
// set and its stream does not capture job subjects itself.
func (o *outbox) mirror(msg *nats.Msg) {
	o.mu.Lock()
	st := o.store
	o.mu.Unlock()
	if st != nil && strings.HasPrefix(msg.Subject, "job.") {
		st.mirror(msg)
	}
}

// setStore turns acknowledged result publishing on (or off with nil).
func (o *outbox) setStore(s storer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.store = s
}

// keep records a message about to be published. It is kept before the
// publish starts: a publish can wait for the connection's lock while a
// stuck write times out, then slip its message into the dead
// connection's buffer, and the reconnect that follows must find it kept
// when it looks for what to publish again. Kept after the publish, it
// came too late under load (seen: one result of 2,550 never published
// again, with no drop anywhere in NATS).
func (o *outbox) keep(msg *nats.Msg) *sent {
	e := &sent{msg: msg, at: time.Now()}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.entries = append(o.entries, e)
	o.bytes += size(msg)
	o.prune(e.at)
	return e
}

// markStored records that e's message is stored, so it is never published again.
func (o *outbox) markStored(e *sent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.stored = true
}

// disconnected records that the connection was found lost at now.
func (o *outbox) disconnected(now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lostAt.IsZero() {
		o.lostAt = now
	}
}

// reconnected publishes again what went out from the window before the
// loss was noticed until now, and what failed to go out at all, and
// returns how many. What went out while disconnected is published again
// too: nats.go's reconnect buffer is dropped when writing it to the new
// server fails, and a connection that dies right after the reconnect
// takes it along.
func (o *outbox) reconnected(now time.Time) int {
	o.mu.Lock()
	lost := o.lostAt
	if lost.IsZero() {
		lost = now // a reconnect nobody reported the loss of
	}
	o.lostAt = time.Time{}
	var again []*sent
	for _, e := range o.entries {
		if !e.stored && (e.failed || !e.at.Before(lost.Add(-o.window))) {
			// Kept with a fresh time, before the publish and under the
			// lock, so that no prune forgets it meanwhile: this copy may
			// be lost with the next connection too.
			e.at = now
			again = append(again, e)
		}
	}
	o.mu.Unlock()
	for _, e := range again {
		err := o.send(e.msg)
		if err == nil {
			o.mirror(e.msg)
		}
		o.mu.Lock()
		e.failed = err != nil
		o.republished++
		o.mu.Unlock()
		if err != nil {
			o.log.Warn("publish again after reconnect", "subject", e.msg.Subject, "err", err)
		}
	}
	return len(again)
}

// count is how many messages were published again since the start.
func (o *outbox) count() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.republished
}

// prune forgets what is older than the window (counted back from the
// loss while disconnected), except what never left, then updates full.
// It never forgets a message still inside the window: the byte bound
// stops new work instead.
func (o *outbox) prune(now time.Time) {
	ref := now
	if !o.lostAt.IsZero() {
		ref = o.lostAt
	}
	keep := o.entries[:0]
	for _, e := range o.entries {
		if e.failed || !e.at.Before(ref.Add(-o.window)) {
			keep = append(keep, e)
		} else {
			o.bytes -= size(e.msg)
		}
	}
	for i := len(keep); i < len(o.entries); i++ {
		o.entries[i] = nil
	}
	o.entries = keep
	switch {
	case !o.full && o.bytes >= o.maxBytes:
		o.full = true
		o.log.Warn("republish window full: taking no new commands (they answer busy) until results leave it",
			"held_bytes", o.bytes, "max_bytes", o.maxBytes, "window", o.window, "connected", o.lostAt.IsZero())
	case o.full && o.bytes < o.maxBytes/4*3:
		o.full = false
		o.log.Info("republish window has room again: taking commands", "held_bytes", o.bytes, "max_bytes", o.maxBytes)
	}
}

func size(m *nats.Msg) int { return len(m.Subject) + len(m.Data) + 64 }

// byteSize says n in MiB, or KiB below one MiB.
func byteSize(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
