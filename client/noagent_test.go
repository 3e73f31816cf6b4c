package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
)

// calls runs every client call against hive and returns its error by name.
func calls(c *client.Client, ctx context.Context, hive string) map[string]error {
	errs := map[string]error{}
	_, errs["spawn"] = c.Spawn(ctx, hive, client.SpawnRequest{ModelID: "m", Device: "cpu"}, func(client.Event) {})
	_, errs["delete"] = c.Delete(ctx, hive, "w1", -1, nil)
	_, errs["list"] = c.List(ctx, hive)
	_, errs["get"] = c.Get(ctx, hive, "w1", -1)
	_, errs["logs"] = c.Logs(ctx, hive, "w1", client.LastLines(5))
	errs["follow"] = c.Follow(ctx, hive, "w1", 5, func([]string) {})
	_, errs["discover"] = c.Discover(ctx)
	_, _, errs["list all"] = c.ListAll(ctx)
	_, errs["hives"] = c.Hives(ctx)
	return errs
}

// With nobody serving a subject the server says so at once: every call is
// ErrNoAgent wrapping nats.ErrNoResponders, long before the timeout (a
// minute here; the test would show DeadlineExceeded if it waited for it).
func TestClient_NoResponders(t *testing.T) {
	s := testenv.NATS(t)
	c := newClient(t, s, client.WithTimeout(time.Minute))
	for name, err := range calls(c, ctx(t), "nobody-here") {
		if !errors.Is(err, client.ErrNoAgent) || !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("%s: got %v, want ErrNoAgent wrapping nats.ErrNoResponders", name, err)
		}
		var ae *client.AgentError
		if errors.As(err, &ae) {
			t.Errorf("%s: got an *AgentError %v with no agent", name, ae)
		}
	}
}

// silent subscribes to subjects and never answers: an agent that hangs.
func silent(t *testing.T, nc *nats.Conn, subjects ...string) {
	t.Helper()
	for _, subj := range subjects {
		sub, err := nc.Subscribe(subj, func(*nats.Msg) {})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A hung agent: every call ends with ErrNoAgent wrapping
// context.DeadlineExceeded once the client's timeout has passed.
func TestClient_Timeout(t *testing.T) {
	s := testenv.NATS(t)
	silent(t, testenv.Connect(t, s), "hive.hung.worker.>", "$SRV.>")
	c := newClient(t, s, client.WithTimeout(200*time.Millisecond))
	for name, err := range calls(c, context.Background(), "hung") {
		if !errors.Is(err, client.ErrNoAgent) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: got %v, want ErrNoAgent wrapping context.DeadlineExceeded", name, err)
		}
	}
}

// A caller that gives up (Ctrl-C) gets its cancellation, not ErrNoAgent.
func TestClient_Cancelled(t *testing.T) {
	s := testenv.NATS(t)
	silent(t, testenv.Connect(t, s), "hive.hung.worker.>")
	c := newClient(t, s, client.WithTimeout(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := c.Spawn(ctx, "hung", client.SpawnRequest{ModelID: "m", Device: "cpu"}, nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrNoAgent) {
		t.Errorf("spawn: got %v, want context.Canceled and not ErrNoAgent", err)
	}
	_, err = c.List(ctx, "hung")
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrNoAgent) {
		t.Errorf("list: got %v, want context.Canceled and not ErrNoAgent", err)
	}
}

// A reply can be lost while the job result arrives: Spawn returns with
// the result. A relay hands the command to a real agent without a reply
// subject, so the agent's only answer is job.<job_id>.result.
func TestClient_SpawnReturnsOnResultWithoutReply(t *testing.T) {
	s := testenv.NATS(t)
	hive := startAgent(t, s)
	relay := testenv.Connect(t, s)
	sub, err := relay.Subscribe("hive.relay.worker.spawn", func(m *nats.Msg) {
		relay.Publish("hive."+hive+".worker.spawn", m.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	relay.Flush()

	c := newClient(t, s, client.WithTimeout(time.Minute))
	var rec recorder
	r, err := c.Spawn(ctx(t), "relay", client.SpawnRequest{WorkerID: "w1", ModelID: "m", Device: "cpu"}, rec.add)
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	if r.HiveID != hive || r.Result.WorkerID != "w1" || !testenv.Alive(r.Result.PID) {
		t.Errorf("spawn through the relay: got %+v", r)
	}
	checkOrdered(t, rec.events, r.JobID, r.CommandID, true)
	if _, err := c.Delete(ctx(t), hive, "w1", 0, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
}
