package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// DefaultStaleWindow is how far back Fleet looks for hives that stopped answering.
const DefaultStaleWindow = time.Hour

// heartbeatSubjects matches every hive's heartbeat.
const heartbeatSubjects = subjects.AllHeartbeats

// Heartbeat is the event an agent publishes on
// hive.<hive_id>.events.agent.heartbeat while it serves.
type Heartbeat = wire.HeartbeatEvent

// ErrNoEventsStream means the JetStream domain read has no HIVE_EVENTS
// (or no JetStream): Fleet then lists only the agents that answer.
var ErrNoEventsStream = errors.New("no " + EventsStream + " stream")

// Fleet is Hives plus the hives whose last heartbeat in HIVE_EVENTS is
// within window and which no answering agent serves now: those come with
// Stale set, LastSeen and what their last heartbeat said. hidden is
// non-nil (wrapping ErrNoEventsStream, or the read's error) when the
// stream could not be read: then only the answering agents are listed.
// No agent answering and nothing stale is ErrNoAgent.
func (c *Client) Fleet(ctx context.Context, window time.Duration) (hives []HiveInfo, hidden error, err error) {
	if window <= 0 {
		window = DefaultStaleWindow
	}
	hives, err = c.Hives(ctx)
	if err != nil && !errors.Is(err, ErrNoAgent) {
		return nil, nil, err
	}
	answered := err
	beats, hidden := c.lastHeartbeats(ctx)
	serving := map[string]bool{}
	for _, h := range hives {
		serving[h.HiveID] = true
	}
	now := time.Now()
	for _, b := range beats {
		if serving[b.hb.HiveID] || now.Sub(b.at) > window {
			continue
		}
		hives = append(hives, HiveInfo{HiveID: b.hb.HiveID, Instance: b.hb.Instance, Workers: b.hb.Workers,
			InFlight: b.hb.InFlight, Stale: true, LastSeen: b.at.UTC()})
	}
	if len(hives) == 0 {
		return nil, hidden, answered
	}
	sortHives(hives)
	return hives, hidden, nil
}

type seenBeat struct {
	hb Heartbeat
	at time.Time // when HIVE_EVENTS stored it
}

// lastHeartbeats reads the last stored heartbeat of every hive.
func (c *Client) lastHeartbeats(ctx context.Context) ([]seenBeat, error) {
	ctx, cancel := bound(ctx, c.timeout)
	defer cancel()
	js, err := c.jetStream()
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, EventsStream)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoEventsStream, err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{heartbeatSubjects}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", heartbeatSubjects, err)
	}
	var beats []seenBeat
	for pending := cons.CachedInfo().NumPending; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", heartbeatSubjects, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var hb Heartbeat
			md, err := m.Metadata()
			if err != nil || json.Unmarshal(m.Data(), &hb) != nil || hb.HiveID == "" {
				continue
			}
			beats = append(beats, seenBeat{hb: hb, at: md.Timestamp})
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read %s: %w", heartbeatSubjects, err)
		}
		if n == 0 {
			break
		}
		pending -= uint64(n)
	}
	return beats, nil
}
