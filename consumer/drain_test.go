//go:build unix

package consumer_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// withDrainFile keeps the agent's drain state in file (after other options).
func withDrainFile(file string, jetStream bool) func(*agentOpts) {
	return func(o *agentOpts) {
		if jetStream {
			withJetStream(true)(o)
		}
		prev := o.config
		o.config = func(nc *nats.Conn, c *consumer.Config) {
			if prev != nil {
				prev(nc, c)
			}
			c.DrainFile = file
		}
	}
}

func (a *agent) agentReq(t testing.TB, cmd, body string) reply {
	t.Helper()
	msg, err := a.client.Request("hive."+a.hive+".agent."+cmd, []byte(body), 30*time.Second)
	if err != nil {
		t.Fatalf("agent.%s: %v", cmd, err)
	}
	var r reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatalf("agent.%s reply: %v: %s", cmd, err, msg.Data)
	}
	r.raw, r.headers = msg.Data, msg.Header
	return r
}

// metadataOf is the micro metadata of the hive's service, polled until
// the one instance that answers has key equal to want.
func (a *agent) waitMetadata(t testing.TB, key, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs := collect(t, a.client, "$SRV.INFO."+consumer.ServiceName)
		var got []string
		for _, m := range msgs {
			var info micro.Info
			if json.Unmarshal(m, &info) == nil && info.Metadata["hive_id"] == a.hive {
				got = append(got, info.Metadata[key])
			}
		}
		if len(got) == 1 && got[0] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata %s of hive %s: got %q, want one instance with %q", key, a.hive, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// collect gathers every answer to a request on subj for a short while.
func collect(t testing.TB, nc *nats.Conn, subj string) [][]byte {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subj, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		m, err := sub.NextMsg(300 * time.Millisecond)
		if err != nil {
			return out
		}
		out = append(out, m.Data)
	}
}

// While draining, spawn and restart answer draining; list, get, logs and
// delete work; metadata says draining; events announce both turns.
func TestDrain_RefusesSpawnsAndResumes(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), withDrainFile(filepath.Join(t.TempDir(), "drain.json"), false))
	agentEvents := a.watch(t, "hive."+a.hive+".events.agent.*")
	a.must(t, "spawn", `{"worker_id":"d1","model_id":"m","device":"cpu","wait":"exec"}`, nil)
	var dr wire.DrainResult
	r := a.agentReq(t, "drain", `{"job_id":"j-drain"}`)
	if !r.OK || r.Kind != "agent.drain" {
		t.Fatalf("drain: %s", r.raw)
	}
	json.Unmarshal(r.Result, &dr)
	if !dr.Draining || dr.Since.IsZero() || dr.StopWorkers {
		t.Errorf("drain result %+v", dr)
	}
	a.waitMetadata(t, "draining", "true")
	wantError(t, a.req(t, "spawn", `{"worker_id":"d2","model_id":"m","device":"cpu"}`), wire.CodeDraining, "")
	wantError(t, a.req(t, "restart", `{"worker_id":"d1"}`), wire.CodeDraining, "")
	a.must(t, "get", `{"worker_id":"d1"}`, nil)
	a.must(t, "logs", `{"worker_id":"d1"}`, nil)
	a.stillServes(t)
	a.must(t, "delete", `{"worker_id":"d1"}`, nil)

	if r := a.agentReq(t, "resume", ``); !r.OK || r.Kind != "agent.resume" {
		t.Fatalf("resume: %s", r.raw)
	}
	a.waitMetadata(t, "draining", "")
	a.must(t, "spawn", `{"worker_id":"d2","model_id":"m","device":"cpu","wait":"exec"}`, nil)
	a.must(t, "delete", `{"worker_id":"d2"}`, nil)
	// The agent's heartbeats are agent events too: leave them out.
	drains := func(all [][]byte) (out [][]byte) {
		for _, m := range all {
			if !strings.Contains(string(m), `"instance"`) {
				out = append(out, m)
			}
		}
		return out
	}
	agentEvents.waitFor(t, "draining and resumed", func(all [][]byte) bool { return len(drains(all)) >= 2 })
	msgs := drains(agentEvents.snapshot())
	var first, second wire.DrainEvent
	json.Unmarshal(msgs[0], &first)
	json.Unmarshal(msgs[1], &second)
	if !first.Draining || first.HiveID != a.hive || second.Draining {
		t.Errorf("agent events %s", joinMsgs(msgs))
	}
}

func TestDrain_BadInput(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	for _, c := range []struct{ body, field string }{
		{`{"stop_workers":"yes"}`, "stop_workers"},
		{`{"stop_workers":true,"deadline_ms":-1}`, "deadline_ms"},
		{`{"deadline_ms":1000}`, "deadline_ms"},
		{`{"grace_ms":1000}`, "grace_ms"},
	} {
		wantError(t, a.agentReq(t, "drain", c.body), wire.CodeBadRequest, c.field)
	}
	wantError(t, a.agentReq(t, "resume", `{"now":true}`), wire.CodeBadRequest, "now")
	a.stillServes(t)
}

// A drain with stop_workers deletes every worker once its deadline passed.
func TestDrain_StopWorkersAfterDeadline(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	var w1, w2 wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"s1","model_id":"m","device":"cpu","wait":"exec"}`, &w1)
	a.must(t, "spawn", `{"worker_id":"s2","model_id":"m","device":"cpu","wait":"exec"}`, &w2)
	r := a.agentReq(t, "drain", `{"stop_workers":true,"deadline_ms":300}`)
	var dr wire.DrainResult
	if err := json.Unmarshal(r.Result, &dr); err != nil || !r.OK {
		t.Fatalf("drain: %s", r.raw)
	}
	if len(dr.Stopped) != 2 || dr.DeadlineMS != 300 || !dr.StopWorkers {
		t.Errorf("drain result %+v", dr)
	}
	for _, pid := range []int{w1.PID, w2.PID} {
		if testenv.Alive(pid) {
			t.Errorf("pid %d still runs after the drain", pid)
		}
	}
	a.agentReq(t, "resume", ``)
}

// Intake spawns wait, unacknowledged, while the agent drains, also across
// a restart of the agent (the drain state is in its file); other intake
// commands run; after a resume the spawn runs.
func TestDrain_IntakeSpawnWaitsAcrossRestart(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	hive := testenv.HiveID(t)
	setup(t, js, hive)
	file := filepath.Join(t.TempDir(), "drain.json")
	a := startAgent(t, s, onHive(hive), withDrainFile(file, true))
	if r := a.agentReq(t, "drain", ``); !r.OK {
		t.Fatalf("drain: %s", r.raw)
	}
	publish(t, js, hive, "spawn", spawnBody("q-held", "w1", ""))
	publish(t, js, hive, "list", `{"job_id":"q-list-1"}`)
	waitStored(t, js, "q-list-1") // published after the spawn, done before it
	if rs := storedResults(t, js, "q-held"); len(rs) != 0 {
		t.Fatalf("a spawn ran while draining: %s", rs[0].raw)
	}
	// The list is acknowledged just after its result is stored.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := intakeCount(t, js, hive)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d intake commands left in the stream, want the held spawn", n)
		}
	}

	a.close()
	b := startAgent(t, s, onHive(hive), withDrainFile(file, true))
	wantError(t, b.req(t, "spawn", `{"worker_id":"w2","model_id":"m","device":"cpu"}`), wire.CodeDraining, "")
	publish(t, js, hive, "list", `{"job_id":"q-list-2"}`)
	waitStored(t, js, "q-list-2")
	if rs := storedResults(t, js, "q-held"); len(rs) != 0 {
		t.Fatalf("a spawn ran after the restart while draining: %s", rs[0].raw)
	}
	if r := b.agentReq(t, "resume", ``); !r.OK {
		t.Fatalf("resume: %s", r.raw)
	}
	got := waitStored(t, js, "q-held")
	if !got["q-held"].OK {
		t.Fatalf("held spawn after resume: %s", got["q-held"].raw)
	}
	waitDrained(t, js, hive)
	b.must(t, "delete", `{"worker_id":"w1"}`, nil)
}

func intakeCount(t testing.TB, js jetstream.JetStream, hive string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, consumer.IntakeStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("hive."+hive+".intake.>"))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// A drain with stop_workers also cancels the pending restart of a worker
// in backoff: otherwise it would start again, on its own, once the drain
// had stopped everything.
func TestDrain_StopWorkersCancelsBackoff(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.restartBackoff = time.Hour })
	a.must(t, "spawn", `{"worker_id":"b1","model_id":"m@crash-after=200ms","device":"cpu","wait":"exec","restart":"on-failure"}`, nil)
	a.waitState(t, "b1", "backoff", false)
	r := a.agentReq(t, "drain", `{"stop_workers":true}`)
	var dr wire.DrainResult
	if err := json.Unmarshal(r.Result, &dr); err != nil || !r.OK {
		t.Fatalf("drain: %s", r.raw)
	}
	if len(dr.Stopped) != 1 || dr.Stopped[0] != "b1" {
		t.Errorf("drain stopped %v, want [b1]", dr.Stopped)
	}
	if w, ok := a.listEntry(t, "b1", false); ok {
		t.Errorf("b1 still listed after the drain, as %s (restart_at %s)", w.State, w.RestartAt)
	}
	a.agentReq(t, "resume", ``)
	a.stillServes(t)
}
