package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
)

type eventLog struct {
	mu  sync.Mutex
	evs []client.HiveEvent
	got chan struct{}
}

func (l *eventLog) add(e client.HiveEvent) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
	select {
	case l.got <- struct{}{}:
	default:
	}
}

// waitKind waits for an event of kind about worker, failing after 20 s.
func (l *eventLog) waitKind(t *testing.T, kind, worker string) client.HiveEvent {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		for _, e := range l.evs {
			if e.Kind == kind && e.WorkerID == worker {
				l.mu.Unlock()
				return e
			}
		}
		n := len(l.evs)
		l.mu.Unlock()
		select {
		case <-l.got:
		case <-deadline:
			t.Fatalf("no %s event of %s among %d", kind, worker, n)
		}
	}
}

// Events with Since and Follow replays what HIVE_EVENTS kept, then goes on
// with new events from the stream.
func TestEvents_ReplayThenFollow(t *testing.T) {
	s := testenv.NATSWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
	c := newClient(t, s)
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := consumer.SetupStreams(ctx(t), js, "", consumer.StreamsConfig{}, true); err != nil {
		t.Fatal(err)
	}
	hive := startAgent(t, s)
	if _, err := c.Spawn(ctx(t), hive, client.SpawnRequest{ModelID: "m", Device: "cpu", WorkerID: "ev1"}, nil); err != nil {
		t.Fatal(err)
	}
	log := &eventLog{got: make(chan struct{}, 1)}
	fctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Events(fctx, client.EventsOptions{Hive: hive, Since: time.Hour, Follow: true}, log.add)
	}()
	started := log.waitKind(t, "worker.started", "ev1")
	if started.HiveID != hive || started.Time.IsZero() || started.Subject != "hive."+hive+".events.worker.started" {
		t.Errorf("replayed event %+v", started)
	}
	if _, err := c.Delete(ctx(t), hive, "ev1", time.Second, nil); err != nil {
		t.Fatal(err)
	}
	log.waitKind(t, "worker.exited", "ev1")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Events after cancel: %v", err)
	}
	// Without Since and Follow a replay stops once caught up.
	again := &eventLog{got: make(chan struct{}, 1)}
	if err := c.Events(ctx(t), client.EventsOptions{Hive: hive, Since: time.Hour}, again.add); err != nil {
		t.Fatal(err)
	}
	again.waitKind(t, "worker.exited", "ev1")
	if err := c.Events(ctx(t), client.EventsOptions{Hive: "a.b"}, again.add); !errorsIsInvalid(err) {
		t.Errorf("bad hive: got %v, want ErrInvalid", err)
	}
}

func errorsIsInvalid(err error) bool { return err != nil && errors.Is(err, client.ErrInvalid) }
