package client_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// Three agents on one server: ListAll finds every hive through micro and
// merges their workers, each tagged with its hive; Hives describes each
// agent. A service that says it is a hive but serves no commands is
// reported, not fatal.
func TestClient_ListAllAndHives(t *testing.T) {
	s := testenv.NATS(t)
	hives := []string{startAgent(t, s), startAgent(t, s), startAgent(t, s)}
	slices.SortFunc(hives, client.NaturalCompare)
	c := newClient(t, s)

	// Two workers on the first hive, one on the second, none on the third.
	spawned := map[string]string{"w10": hives[0], "w2": hives[0], "w1": hives[1]}
	for id, hive := range spawned {
		if _, err := c.Spawn(ctx(t), hive, client.SpawnRequest{WorkerID: id, ModelID: "m", Device: "cpu", Wait: "exec"}, nil); err != nil {
			t.Fatalf("spawn %s on %s: %v", id, hive, err)
		}
	}
	// A hive that registered as an agent but serves no commands.
	ghostConn := testenv.Connect(t, s)
	ghost, err := micro.AddService(ghostConn, micro.Config{Name: client.ServiceName, Version: "0.0.1",
		Metadata: map[string]string{"hive_id": "ghost", "version": "0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Stop()
	ghostConn.Flush() // its subscriptions are on another connection than the client's

	workers, failed, err := c.ListAll(ctx(t))
	if err != nil {
		t.Fatalf("list all: %v", err)
	}
	var got [][2]string
	for _, w := range workers {
		got = append(got, [2]string{w.HiveID, w.WorkerID})
	}
	want := [][2]string{{hives[0], "w2"}, {hives[0], "w10"}, {hives[1], "w1"}}
	if !slices.Equal(got, want) {
		t.Errorf("list all: got %v, want %v", got, want)
	}
	if len(failed) != 1 || failed[0].HiveID != "ghost" || !errors.Is(failed[0], client.ErrNoAgent) || !errors.Is(failed[0], nats.ErrNoResponders) {
		t.Errorf("failed hives: got %v, want ghost with no responders", failed)
	}

	infos, err := c.Hives(ctx(t))
	if err != nil {
		t.Fatalf("hives: %v", err)
	}
	wantWorkers := map[string]int{hives[0]: 2, hives[1]: 1, hives[2]: 0}
	var ids []string
	for _, h := range infos {
		ids = append(ids, h.HiveID)
		if h.HiveID == "ghost" {
			if h.Workers != -1 || h.Error == "" {
				t.Errorf("ghost: got workers %d error %q, want -1 and the list error", h.Workers, h.Error)
			}
			continue
		}
		if h.Workers != wantWorkers[h.HiveID] || h.Version != "0.0.1-test" || h.Instance == "" ||
			h.MaxInFlight != 8 || h.InFlight != 0 || h.Started.IsZero() || h.UptimeMS < 0 || h.Error != "" {
			t.Errorf("hive %s: got %+v", h.HiveID, h)
		}
	}
	wantIDs := append(slices.Clone(hives), "ghost")
	slices.SortFunc(wantIDs, client.NaturalCompare)
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("hives: got %v, want %v", ids, wantIDs)
	}

	for id, hive := range spawned {
		if _, err := c.Delete(ctx(t), hive, id, 0, nil); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	}
	if workers, _, err := c.ListAll(ctx(t)); err != nil || len(workers) != 0 {
		t.Errorf("list all after deletes: got %v, %v", workers, err)
	}
}

// Hives reports commands in flight from the agents' stats while a command
// runs (a spawn waiting for a worker that never gets ready).
func TestClient_HivesInFlight(t *testing.T) {
	s := testenv.NATS(t)
	hive := startAgent(t, s)
	c := newClient(t, s)
	done := make(chan error, 1)
	go func() {
		_, err := c.Spawn(ctx(t), hive, client.SpawnRequest{WorkerID: "slow", ModelID: "m@no-health", Device: "cpu",
			Wait: "ready", WaitTimeout: 3 * time.Second}, nil)
		done <- err
	}()
	var seen int
	deadline := time.Now().Add(20 * time.Second)
	for seen == 0 && time.Now().Before(deadline) {
		infos, err := c.Hives(ctx(t))
		if err != nil {
			t.Fatalf("hives: %v", err)
		}
		if len(infos) == 1 {
			seen = infos[0].InFlight
		}
		select {
		case err := <-done:
			done <- err
			deadline = time.Now() // the spawn ended before a stats read caught it
		case <-time.After(20 * time.Millisecond):
		}
	}
	if seen != 1 {
		t.Errorf("in flight: got %d, want 1 while the spawn waits", seen)
	}
	if err := <-done; !client.IsCode(err, wire.CodeNotReady) {
		t.Errorf("spawn: got %v, want not_ready", err)
	}
	if _, err := c.Delete(ctx(t), hive, "slow", 0, nil); err != nil {
		t.Errorf("delete: %v", err)
	}
}
