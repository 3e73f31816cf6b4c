//go:build unix

package consumer_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// worker.restart stops the worker and starts it again with its spec: a
// new pid, the same id, port, model, device, type and queen URL; its
// restarts count one up; narrated like a delete followed by a spawn.
func TestConsumer_RestartCommand(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"r1","model_id":"org/m","device":"cpu","queen_url":"http://queen.example:7833","restart":"on-failure","max_restarts":5}`, &sp)
	narr := a.watch(t, "job.j-restart.narration")
	var rr wire.RestartResult
	r := a.must(t, "restart", `{"job_id":"j-restart","worker_id":"r1","grace_ms":2000}`, &rr)
	if r.Kind != "worker.restart" {
		t.Errorf("kind %q", r.Kind)
	}
	if rr.PreviousPID != sp.PID || rr.PID == sp.PID || rr.WorkerID != "r1" || rr.Port != sp.Port || rr.ModelID != "org/m" ||
		rr.Device != "cpu" || rr.WorkerType != sp.WorkerType {
		t.Errorf("restart result %+v, spawned %+v", rr, sp)
	}
	if !testenv.WaitGone(sp.PID, 0) {
		t.Errorf("previous pid %d still runs", sp.PID)
	}
	if !testenv.Alive(rr.PID) {
		t.Fatalf("new pid %d is not running", rr.PID)
	}
	args := testenv.Cmdline(rr.PID)
	if i := slices.Index(args, "--queen-url"); i < 0 || args[i+1] != "http://queen.example:7833" {
		t.Errorf("queen url not kept: %q", args)
	}
	env := testenv.Environ(rr.PID)
	if env["HIVE_AGENT_RESTART"] != "on-failure" || env["HIVE_AGENT_MAX_RESTARTS"] != "5" || env["HIVE_AGENT_RESTARTS"] != "1" {
		t.Errorf("restart policy not kept: %v", env)
	}
	w := a.waitState(t, "r1", "running", false)
	if w.Restarts != 1 || w.PID != rr.PID {
		t.Errorf("list after restart: %+v", w)
	}
	evs := events(t, narr.waitFor(t, "restart end", hasEnd(t)))
	checkNarration(t, evs, a.hive, "j-restart")
	want := []string{"worker_restart_start", "worker_signal_sent", "worker_stopped", "worker_binary_resolved",
		"worker_restarted", "worker_alive", "worker_restart_done"}
	if got := actions(evs); !slices.Equal(got, want) {
		t.Errorf("narration %v, want %v", got, want)
	}
	a.must(t, "delete", `{"worker_id":"r1"}`, nil)
}

func TestConsumer_RestartBadInput(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	for _, c := range []struct{ body, code, field string }{
		{`{}`, wire.CodeBadRequest, "worker_id"},
		{`{"worker_id":"a.b"}`, wire.CodeBadRequest, "worker_id"},
		{`{"worker_id":"w","grace_ms":-1}`, wire.CodeBadRequest, "grace_ms"},
		{`{"worker_id":"w","wait":"soon"}`, wire.CodeBadRequest, "wait"},
		{`{"worker_id":"w","model_id":"m"}`, wire.CodeBadRequest, "model_id"},
		{`{"worker_id":"nobody"}`, wire.CodeNotFound, ""},
	} {
		wantError(t, a.req(t, "restart", c.body), c.code, c.field)
	}
	a.stillServes(t)
}

// worker.restart of a worker in backoff starts it at once: its pending
// restart is cancelled, nothing is stopped.
func TestConsumer_RestartFromBackoff(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.restartBackoff = time.Hour })
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"bk","model_id":"m@crash-after=300ms","device":"cpu","wait":"exec","restart":"on-failure","max_restarts":3}`, &sp)
	a.waitState(t, "bk", "backoff", false)
	narr := a.watch(t, "job.j-bk.narration")
	var rr wire.RestartResult
	a.must(t, "restart", `{"job_id":"j-bk","worker_id":"bk","wait":"exec"}`, &rr)
	if rr.PreviousPID != sp.PID || rr.PID == sp.PID || rr.Port != sp.Port {
		t.Errorf("restart from backoff: %+v, spawned %+v", rr, sp)
	}
	evs := events(t, narr.waitFor(t, "restart end", hasEnd(t)))
	if got := actions(evs); !slices.Contains(got, "worker_restart_cancelled") || slices.Contains(got, "worker_signal_sent") {
		t.Errorf("narration %v: want the pending restart cancelled and nothing signalled", got)
	}
	// It crashes again after 300 ms: running as the new pid, or back in
	// backoff; either way as restart 1.
	w, ok := a.listEntry(t, "bk", false)
	if !ok || w.Restarts != 1 || (w.State != "backoff" && w.PID != rr.PID) {
		t.Errorf("list after restart from backoff: %+v", w)
	}
	a.must(t, "delete", `{"worker_id":"bk"}`, nil)
}

// worker.restart of a worker that exited (within the exited TTL) starts it
// again from its last spec, as supervisorctl restart starts a stopped
// program: same id, model and port, one restart more, nothing stopped.
func TestConsumer_RestartFromExited(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"ex","model_id":"m@crash-after=200ms","device":"cpu","wait":"exec","restart":"no"}`, &sp)
	a.waitState(t, "ex", "exited", true)
	narr := a.watch(t, "job.j-ex.narration")
	var rr wire.RestartResult
	a.must(t, "restart", `{"job_id":"j-ex","worker_id":"ex","wait":"exec"}`, &rr)
	if rr.PreviousPID != sp.PID || rr.PID == sp.PID || rr.Port != sp.Port || rr.ModelID != sp.ModelID {
		t.Errorf("restart of an exited worker: %+v, spawned %+v", rr, sp)
	}
	if w, ok := a.listEntry(t, "ex", true); !ok || w.Restarts != 1 {
		t.Errorf("list after the restart: %+v (found %v), want restarts 1", w, ok)
	}
	evs := events(t, narr.waitFor(t, "restart end", hasEnd(t)))
	got := actions(evs)
	if !slices.Contains(got, "worker_already_exited") || slices.Contains(got, "worker_signal_sent") {
		t.Errorf("narration %v: want worker_already_exited and nothing signalled", got)
	}
	for _, e := range evs {
		if e.Action == "worker_already_exited" && !strings.Contains(e.Human, "exited with status 3") {
			t.Errorf("worker_already_exited %q: want how it ended (exited with status 3)", e.Human)
		}
	}
	a.waitState(t, "ex", "exited", true) // it crashes again after 200 ms: nothing left running
	wantError(t, a.req(t, "restart", `{"worker_id":"never-was"}`), wire.CodeNotFound, "")
	a.stillServes(t)
}
