//go:build unix

package consumer_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/health"
	"github.com/rbee/hive-agent/internal/testenv"
)

// withHealth checks every 100 ms, 3 failures in a row make a worker unhealthy.
func withHealth(on string) func(*agentOpts) {
	return func(o *agentOpts) {
		o.config = func(_ *nats.Conn, c *consumer.Config) {
			c.Health = &consumer.HealthConfig{Defaults: health.Policy{
				Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, Failures: 3, OnUnhealthy: on}}
		}
	}
}

// toggle switches the test worker's health: ok, fail or hang.
func toggle(t testing.TB, port int, to string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/toggle?health=%s", port, to))
	if err != nil {
		t.Fatalf("toggle health %s: %v", to, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("toggle health %s: %s", to, resp.Status)
	}
}

func unhealthyEvents(t testing.TB, msgs [][]byte) []consumer.UnhealthyEvent {
	t.Helper()
	out := make([]consumer.UnhealthyEvent, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m, &out[i]); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, m)
		}
	}
	return out
}

// A worker whose health check fails turns unhealthy (event, state), and
// ready again once it answers (event, state); a hanging check counts as a
// failure too.
func TestHealth_UnhealthyAndHealthyEvents(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), withHealth(health.OnUnhealthyEvent))
	both := a.watch(t, "hive."+a.hive+".events.worker.*")
	var sp commands.SpawnResult
	a.must(t, "spawn", `{"worker_id":"h1","model_id":"m","device":"cpu"}`, &sp)
	a.waitState(t, "h1", "ready", false)

	toggle(t, sp.Port, "fail")
	w := a.waitState(t, "h1", "unhealthy", false)
	if w.PID != sp.PID {
		t.Errorf("unhealthy entry has pid %d, want %d", w.PID, sp.PID)
	}
	toggle(t, sp.Port, "ok")
	a.waitState(t, "h1", "ready", false)
	toggle(t, sp.Port, "hang")
	a.waitState(t, "h1", "unhealthy", false)

	msgs := both.waitFor(t, "unhealthy, healthy, unhealthy", func(m [][]byte) bool {
		n := 0
		for _, b := range m {
			if strings.Contains(string(b), `"failures"`) {
				n++
			}
		}
		return n >= 3
	})
	var health []consumer.UnhealthyEvent
	for _, m := range msgs {
		if strings.Contains(string(m), `"failures"`) {
			health = append(health, unhealthyEvents(t, [][]byte{m})[0])
		}
	}
	first, back, again := health[0], health[1], health[2]
	if first.Failures != 3 || first.PID != sp.PID || first.WorkerID != "h1" || first.HiveID != a.hive ||
		!strings.Contains(first.LastError, "500") || first.Since == "" || first.Action != "event" {
		t.Errorf("first unhealthy event: %+v", first)
	}
	if back.Failures != 0 || back.LastError != "" || back.PID != sp.PID || back.Since != first.Since {
		t.Errorf("healthy event: %+v", back)
	}
	if again.Failures != 3 || !strings.Contains(again.LastError, "no answer") {
		t.Errorf("unhealthy after hang: %+v", again)
	}
	if !testenv.Alive(sp.PID) {
		t.Errorf("on_unhealthy event must leave the worker running")
	}
	a.must(t, "delete", `{"worker_id":"h1"}`, nil)
	a.stillServes(t)
}

// on_unhealthy restart stops the worker and starts it again (new pid,
// same port, restarts counted, narrated on the spawning job) until
// max_restarts; then it only reports.
func TestHealth_RestartOnUnhealthy(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), withHealth(health.OnUnhealthyRestart))
	narr := a.watch(t, "job.j-sick.narration")
	started := a.watch(t, "hive."+a.hive+".events.worker.started")
	var sp commands.SpawnResult
	a.must(t, "spawn", `{"job_id":"j-sick","worker_id":"u1","model_id":"m","device":"cpu","max_restarts":1}`, &sp)
	a.waitState(t, "u1", "ready", false)
	toggle(t, sp.Port, "fail")
	started.waitFor(t, "restart's started event", started.count(2))
	w := a.waitState(t, "u1", "ready", false)
	if w.PID == sp.PID || w.Port != sp.Port || w.Restarts != 1 {
		t.Errorf("after restart on unhealthy: %+v (spawned pid %d port %d)", w, sp.PID, sp.Port)
	}
	if !testenv.WaitGone(sp.PID, 10*time.Second) {
		t.Errorf("unhealthy pid %d still runs", sp.PID)
	}
	// The second time, max_restarts (1) is reached: reported, not restarted.
	toggle(t, w.Port, "fail")
	evs := events(t, narr.waitFor(t, "max_restarts narration", func(m [][]byte) bool {
		return slices.Contains(actions(events(t, m)), "worker_unhealthy")
	}))
	got := actions(evs)
	for _, want := range []string{"worker_restart_start", "worker_signal_sent", "worker_stopped", "worker_restarted", "worker_restart_done", "worker_unhealthy"} {
		if !slices.Contains(got, want) {
			t.Errorf("spawning job's narration lacks %s: %v", want, got)
		}
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("narration seq %d at %d: the restart must continue the job's numbering", e.Seq, i)
		}
	}
	x := a.waitState(t, "u1", "unhealthy", false)
	if x.PID != w.PID || x.Restarts != 1 {
		t.Errorf("after max_restarts: %+v, want pid %d restarts 1", x, w.PID)
	}
	a.must(t, "delete", `{"worker_id":"u1"}`, nil)
	a.stillServes(t)
}
