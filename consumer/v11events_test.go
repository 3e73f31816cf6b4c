package consumer_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// A delete publishes worker.stopping before its first signal: on the wire
// it comes before the SIGTERM narration and the exited event, and the
// narration's time precedes the moment the worker saw the signal.
func TestConsumer_StoppingBeforeSignal(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"job_id":"j-up","worker_id":"sw","model_id":"m","device":"cpu","wait":"ready"}`, &sp)
	// One subscription, so the order seen is the order published.
	sub, err := a.client.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	a.client.Flush()
	a.must(t, "delete", `{"job_id":"j-down","worker_id":"sw","grace_ms":4000}`, nil)

	var order []string
	var stopping wire.StoppingEvent
	var sigNarration wire.Event
	exitedSubj := "hive." + a.hive + ".events.worker.exited"
	for deadline := time.Now().Add(20 * time.Second); ; {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("no exited event; saw %v", order)
		}
		switch m.Subject {
		case "hive." + a.hive + ".events.worker.stopping":
			order = append(order, "stopping")
			json.Unmarshal(m.Data, &stopping)
		case "job.j-down.narration":
			var e wire.Event
			json.Unmarshal(m.Data, &e)
			if e.Action == "worker_signal_sent" {
				order = append(order, "signal_narrated")
				sigNarration = e
			}
		case exitedSubj:
			order = append(order, "exited")
		}
		if m.Subject == exitedSubj {
			break
		}
	}
	if want := []string{"stopping", "signal_narrated", "exited"}; !equal(order, want) {
		t.Errorf("order on the wire: got %v, want %v", order, want)
	}
	want := wire.StoppingEvent{HiveID: a.hive, WorkerID: "sw", JobID: "j-up", PID: sp.PID, ByJobID: "j-down", GraceMS: 4000}
	if stopping != want {
		t.Errorf("stopping event: got %+v, want %+v", stopping, want)
	}
	// The worker logs when its SIGTERM handler ran.
	log, err := os.ReadFile(sp.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	match := regexp.MustCompile(`SIGTERM received at unix ns (\d+)`).FindSubmatch(log)
	if match == nil {
		t.Fatalf("worker log has no SIGTERM time:\n%s", log)
	}
	ns, _ := strconv.ParseInt(string(match[1]), 10, 64)
	narrated := sigNarration.TS.Time
	if seen := time.Unix(0, ns); !narrated.Before(seen) {
		t.Errorf("the SIGTERM was narrated at %s, not before the worker saw it at %s",
			narrated.Format(time.RFC3339Nano), seen.Format(time.RFC3339Nano))
	}
	a.stillServes(t)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// An adopted worker's exit is published with "adopted": true, without
// exit_code and signal when the status is unknown, and without narration on
// a job of an earlier run.
func TestConsumer_AdoptedExit(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	narr := a.watch(t, "job.old-job.narration")
	w := spawner.Worker{HiveID: a.hive, WorkerID: "old", JobID: "old-job", PID: 4242, LogPath: a.sp.LogPathOf("old")}
	a.cons.WorkerExited(w, spawner.Exit{Code: -1, RanMS: 5, Adopted: true})
	a.cons.WorkerExited(w, spawner.Exit{Code: -1, Signal: "SIGKILL", RanMS: 5, Adopted: true})
	msgs := exited.waitFor(t, "two exited events", exited.count(2))
	var raw map[string]any
	json.Unmarshal(msgs[0], &raw)
	_, hasCode := raw["exit_code"]
	_, hasSignal := raw["signal"]
	if raw["adopted"] != true || hasCode || hasSignal || raw["worker_id"] != "old" || raw["job_id"] != "old-job" {
		t.Errorf("unknown status: got %s, want adopted without exit_code and signal", msgs[0])
	}
	json.Unmarshal(msgs[1], &raw)
	if raw["adopted"] != true || raw["signal"] != "SIGKILL" {
		t.Errorf("known signal: got %s", msgs[1])
	}
	a.stillServes(t)
	if got := narr.snapshot(); len(got) != 0 {
		t.Errorf("narrated on the old job: %s", joinMsgs(got))
	}
}

// Two agents with one hive id find each other by their micro metadata; an
// agent of another hive does not count, and nobody answering is quick.
func TestFindPeers(t *testing.T) {
	s := testenv.NATS(t)
	nc := testenv.Connect(t, s)
	start := time.Now()
	peers, err := consumer.FindPeers(t.Context(), nc, "nobody-here")
	if err != nil || len(peers) != 0 {
		t.Fatalf("no agent: got %v, %v", peers, err)
	}
	t.Logf("no agent at all: answered in %s", time.Since(start))
	a := startAgent(t, s)
	b := startAgent(t, s, func(o *agentOpts) { o.hive = a.hive })
	other := startAgent(t, s)
	// FindPeers stops listening once answers pause (150 ms); on a loaded
	// machine one answer can come later than that: ask again.
	for deadline := time.Now().Add(10 * time.Second); ; {
		peers, err = consumer.FindPeers(t.Context(), nc, a.hive)
		if err != nil {
			t.Fatal(err)
		}
		if len(peers) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	host, _ := os.Hostname()
	if len(peers) != 2 {
		t.Fatalf("got peers %v, want the two agents of hive %s", peers, a.hive)
	}
	for _, p := range peers {
		if p.HiveID != a.hive || p.Host != host || p.PID != os.Getpid() || p.Version != "0.0.1" || p.Instance == "" {
			t.Errorf("peer %+v: want host %s pid %d version 0.0.1", p, host, os.Getpid())
		}
	}
	if peers[0].Instance == peers[1].Instance {
		t.Errorf("both peers have instance %s", peers[0].Instance)
	}
	peers, _ = consumer.FindPeers(t.Context(), nc, other.hive)
	if len(peers) != 1 {
		t.Errorf("hive %s: got %v, want one agent", other.hive, peers)
	}
	b.stillServes(t)
}
