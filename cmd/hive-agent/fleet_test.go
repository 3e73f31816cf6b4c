package main

import (
	"fmt"
	"maps"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/internal/testenv"
)

// A command for a hive on a leaf node, published on the hub, is stored
// once in the whole fleet (in the leaf's domain) and run once; its outcome
// is stored once too, and read from the hub and from the leaf. It holds
// with the agent restarted while the command waits and with the hub away.
func TestFleet_CommandStoredOnceAndRunOnce(t *testing.T) {
	f := newFleet(t)
	h0, h1, h2 := newHive(t), newHive(t), newHive(t)
	// Every domain has its streams: an agent runs in each.
	startFleetAgent(t, f.hub, h0, "hub", t.TempDir())
	logDir := t.TempDir()
	a1 := startFleetAgent(t, f.leaf1, h1, "leaf1", logDir)
	startFleetAgent(t, f.leaf2, h2, "leaf2", t.TempDir())
	hub := testenv.Connect(t, f.hub)
	waitServed(t, hub, h1)
	waitServed(t, hub, h2)

	// setup in a domain, from the hub, adds a hive that never ran to that
	// domain's intake only: a command queued for it is stored there once.
	never := "never-" + h2
	r := mustCLI(t, f.hub.ClientURL(), "setup", "--jetstream-domain", "leaf2", "--hive", never)
	if !strings.Contains(r.stdout, "subject hive."+never+".intake.> of stream HIVE_INTAKE") || !strings.Contains(r.stdout, "leaf2") {
		t.Errorf("setup in domain leaf2: %s", r)
	}
	if r := mustCLI(t, f.hub.ClientURL(), "setup", "--jetstream-domain", "leaf2"); !strings.Contains(r.stderr, "captures only the hives served there") {
		t.Errorf("setup in a domain without --hive: %s", r)
	}
	hub.Publish("hive."+never+".intake.worker.list", []byte(`{}`))
	hub.Flush()
	waitStored(t, hub, "HIVE_INTAKE", "hive."+never+".intake.>", map[string]map[string]uint64{"leaf2": {"hive." + never + ".intake.worker.list": 1}})

	// A live listener on the hub still gets the result on job.<job>.result.
	live, err := hub.SubscribeSync("job.f1.result")
	if err != nil {
		t.Fatal(err)
	}
	hub.Flush()

	// 1. The agent is stopped while the command waits: it is stored in
	// leaf1's intake only.
	if err := a1.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("agent stop: %v", err)
	}
	spawn := func(job, worker string) {
		t.Helper()
		body := fmt.Sprintf(`{"job_id":%q,"command_id":"c-%s","worker_id":%q,"model_id":"m","device":"cpu","wait":"exec"}`, job, job, worker)
		if err := hub.Publish("hive."+h1+".intake.worker.spawn", []byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := hub.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// The hub's fleet view shows the leaf's hive stale (HIVE_EVENTS of every
	// domain hears every heartbeat).
	if r := mustCLI(t, f.hub.ClientURL(), "hives"); !strings.Contains(r.stdout, h1+" ") || !strings.Contains(r.stdout, "STALE: last seen") {
		t.Errorf("hives on the hub with %s's agent stopped: %s", h1, r)
	}
	spawn("f1", "w1")
	intake := "hive." + h1 + ".intake.>"
	waitStored(t, hub, "HIVE_INTAKE", intake, map[string]map[string]uint64{"leaf1": {"hive." + h1 + ".intake.worker.spawn": 1}})

	// The restarted agent runs it once; its outcome is stored once, in leaf1.
	a1 = startFleetAgent(t, f.leaf1, h1, "leaf1", logDir)
	r = mustCLI(t, f.hub.ClientURL(), "job", "f1", "-f", "--jetstream-domain", "leaf1", "--timeout", "30s")
	if !strings.Contains(r.stdout, `"worker_id":"w1"`) || strings.Count(r.stderr, "worker_spawn_start") != 1 {
		t.Errorf("job f1 from the hub: %s", r)
	}
	if _, err := live.NextMsg(10 * time.Second); err != nil {
		t.Errorf("live result on the hub: %v", err)
	}
	waitStored(t, hub, "HIVE_INTAKE", intake, map[string]map[string]uint64{})
	wantStored(t, hub, "HIVE_JOBS", "job.f1.>", map[string]map[string]uint64{"leaf1": {"job.f1.result": 1, "job.f1.narration": 4}})
	if n := len(testenv.Marked(h1)); n != 1 {
		t.Errorf("%d processes of hive %s, want 1 worker", n, h1)
	}

	// 2. The hub goes away while the next command waits: leaf1 keeps it,
	// the restarted agent runs it, and the hub reads its outcome once back.
	if err := a1.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("agent stop: %v", err)
	}
	spawn("f2", "w2")
	waitStored(t, hub, "HIVE_INTAKE", intake, map[string]map[string]uint64{"leaf1": {"hive." + h1 + ".intake.worker.spawn": 1}})
	f.hub.Shutdown()
	f.hub.WaitForShutdown()
	startFleetAgent(t, f.leaf1, h1, "leaf1", logDir)
	r = mustCLI(t, f.leaf1.ClientURL(), "job", "f2", "-f", "--timeout", "30s")
	if !strings.Contains(r.stdout, `"worker_id":"w2"`) {
		t.Errorf("job f2 on leaf1 with the hub away: %s", r)
	}
	f.hub = f.startHub(t)
	f.waitLinks(t, 2)
	hub2 := testenv.Connect(t, f.hub)
	waitServed(t, hub2, h1)
	r = mustCLI(t, f.hub.ClientURL(), "job", "f2", "--jetstream-domain", "leaf1")
	if !strings.Contains(r.stdout, `"worker_id":"w2"`) || strings.Count(r.stderr, "worker_spawn_start") != 1 {
		t.Errorf("job f2 from the hub: %s", r)
	}
	wantStored(t, hub2, "HIVE_INTAKE", intake, map[string]map[string]uint64{})
	wantStored(t, hub2, "HIVE_JOBS", "job.f2.>", map[string]map[string]uint64{"leaf1": {"job.f2.result": 1, "job.f2.narration": 4}})
	// The hub's own domain has none of leaf1's outcomes.
	wantCLI(t, runCLI(t, f.hub.ClientURL(), "job", "f2"), 3, "nothing stored")
	if n := len(testenv.Marked(h1)); n != 2 {
		t.Errorf("%d processes of hive %s, want 2 workers", n, h1)
	}
}

// wantStored checks what every domain's stream holds under filter.
func wantStored(t *testing.T, nc *nats.Conn, stream, filter string, want map[string]map[string]uint64) {
	t.Helper()
	if got := storedEverywhere(t, nc, stream, filter); !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("%s holds %v of %s, want %v", stream, got, filter, want)
	}
}

// waitStored waits until every domain's stream holds want under filter
// (what crosses a leaf link or waits for an acknowledgement arrives later).
func waitStored(t *testing.T, nc *nats.Conn, stream, filter string, want map[string]map[string]uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for got := storedEverywhere(t, nc, stream, filter); !maps.EqualFunc(got, want, maps.Equal); got = storedEverywhere(t, nc, stream, filter) {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %v of %s, want %v", stream, got, filter, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
