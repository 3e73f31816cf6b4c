package consumer

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/internal/testenv"
)

// bareOutbox is an outbox without a connection: a test sets its send.
func bareOutbox(window time.Duration) *outbox {
	return newOutbox(nil, slog.New(slog.DiscardHandler), window, 1<<20)
}

// A publish still under way when the connection is lost and found again
// (it waited for the connection's lock while a stuck write timed out,
// then put its message into the dead connection's buffer) is published
// again by the reconnect. Seen before: the outbox kept a message only
// once its publish returned, the reconnect came first, and the result
// was never delivered (one of 2,550 in a frozen-server burst).
func TestOutbox_PublishUnderWayIsPublishedAgain(t *testing.T) {
	o := bareOutbox(time.Minute)
	var mu sync.Mutex
	var sends []string
	started, release := make(chan struct{}), make(chan struct{})
	o.send = func(m *nats.Msg) error {
		mu.Lock()
		sends = append(sends, string(m.Data))
		first := len(sends) == 1
		mu.Unlock()
		if first {
			close(started)
			<-release // the first publish hangs until the reconnect is over
		}
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := o.publish(&nats.Msg{Subject: "job.j1.result", Data: []byte("r1")})
		done <- err
	}()
	<-started
	o.disconnected(time.Now())
	again := o.reconnected(time.Now())
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("publish: %v", err)
	}
	if again != 1 || o.count() != 1 {
		t.Errorf("reconnect published again %d (count %d), want the one publish under way", again, o.count())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sends) != 2 || sends[0] != "r1" || sends[1] != "r1" {
		t.Errorf("sends %q, want r1 twice (under way, then again)", sends)
	}
}

// A publish that returns an error is published again at the next
// reconnect, however old it is by then; one that went out is forgotten
// once the window has passed.
func TestOutbox_FailedPublishWaitsForTheReconnect(t *testing.T) {
	o := bareOutbox(50 * time.Millisecond)
	fail := true
	var sent []string
	o.send = func(m *nats.Msg) error {
		sent = append(sent, string(m.Data))
		if fail {
			return nats.ErrReconnectBufExceeded
		}
		return nil
	}
	if _, err := o.publish(&nats.Msg{Subject: "job.j1.result", Data: []byte("lost")}); err == nil {
		t.Fatal("publish: no error, want the send's")
	}
	fail = false
	if _, err := o.publish(&nats.Msg{Subject: "job.j2.result", Data: []byte("went")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // both older than the window
	o.room()                           // prunes
	sent = nil
	o.disconnected(time.Now())
	if again := o.reconnected(time.Now()); again != 1 || len(sent) != 1 || sent[0] != "lost" {
		t.Errorf("reconnect published again %d: %q, want only the failed one", again, sent)
	}
	sent = nil
	o.disconnected(time.Now().Add(time.Second))
	if again := o.reconnected(time.Now().Add(time.Second)); again != 0 {
		t.Errorf("second reconnect published again %d: %q, want none (the failed one went out)", again, sent)
	}
}

// A result stored through JetStream may be published again by a reconnect
// while its own publish is still under way: the two never touch one
// header at the same time (under -race, a header written by JetStream's
// publish options while a reconnect read it was reported), and every copy
// carries the result's Nats-Msg-Id, so HIVE_JOBS stores each result once.
func TestOutbox_StoredResultPublishedAgainMeanwhile(t *testing.T) {
	s := testenv.NATSWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
	nc := testenv.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: JobsStream, Subjects: []string{"job.>"}})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	o := newOutbox(nc, log, time.Minute, 64<<20)
	o.setStore(&jobStore{js: js, stream: stream, log: log})
	const results = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range results {
			if _, err := o.publishResult(&nats.Msg{Subject: fmt.Sprintf("job.j%d.result", i), Data: []byte(`{"ok":true}`)}); err != nil {
				t.Errorf("publish %d: %v", i, err)
			}
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		o.disconnected(time.Now())
		o.reconnected(time.Now())
	}
	if o.count() == 0 {
		t.Fatal("no result was published again; the test did not test")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := stream.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == results {
			break
		}
		if info.State.Msgs > results || time.Now().After(deadline) {
			t.Fatalf("HIVE_JOBS holds %d messages for %d results (published again %d times), want each once", info.State.Msgs, results, o.count())
		}
	}
}

// What a reconnect publishes again is kept while it does so, even after
// an outage longer than the window: a copy that fails goes out at the
// next reconnect. Seen before: a prune meanwhile (every command makes
// one) forgot it, and a failed copy was never published.
func TestOutbox_RepublishOutlivesTheWindow(t *testing.T) {
	o := bareOutbox(50 * time.Millisecond)
	var sent []string
	fail := false
	o.send = func(m *nats.Msg) error {
		sent = append(sent, string(m.Data))
		if fail {
			o.room() // a command's admission check prunes meanwhile
			return nats.ErrConnectionClosed
		}
		return nil
	}
	if _, err := o.publish(&nats.Msg{Subject: "job.j1.result", Data: []byte("r1")}); err != nil {
		t.Fatal(err)
	}
	o.disconnected(time.Now())
	time.Sleep(200 * time.Millisecond) // the outage outlasts the window
	fail = true
	if again := o.reconnected(time.Now()); again != 1 {
		t.Fatalf("first reconnect published again %d, want r1", again)
	}
	fail, sent = false, nil
	time.Sleep(200 * time.Millisecond)
	o.room()
	o.disconnected(time.Now())
	if again := o.reconnected(time.Now()); again != 1 || len(sent) != 1 || sent[0] != "r1" {
		t.Errorf("second reconnect published again %d: %q, want r1, whose first copy failed", again, sent)
	}
}
