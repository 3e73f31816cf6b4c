//go:build unix

package consumer_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// listEntry is the list entry of id (all: with exited ones), or false.
func (a *agent) listEntry(t testing.TB, id string, all bool) (wire.WorkerInfo, bool) {
	t.Helper()
	var res wire.ListResult
	a.must(t, "list", fmt.Sprintf(`{"all":%v}`, all), &res)
	for _, w := range res.Workers {
		if w.WorkerID == id {
			return w, true
		}
	}
	return wire.WorkerInfo{}, false
}

// waitState polls list until worker id is listed in state, failing after 20 s.
func (a *agent) waitState(t testing.TB, id, state string, all bool) wire.WorkerInfo {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		w, ok := a.listEntry(t, id, all)
		if ok && w.State == state {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s never listed as %s (last: listed %v, %+v)", id, state, ok, w)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLogLine waits (up to 20 s) until the log at path holds line.
func waitLogLine(t testing.TB, path, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), line) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q; log:\n%s", path, line, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each state is seen in a list while it holds: starting during a wait
// alive, loading during a wait ready, running after a failed wait ready,
// stopping during a delete, backoff while a restart is pending, exited after.
func TestConsumer_ListStates(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) {
		o.restartBackoff = time.Hour // backoff holds until the delete
		o.config = func(_ *nats.Conn, c *consumer.Config) { c.Defaults.AliveWindow = time.Hour }
	})

	t.Run("starting, then exited on delete", func(t *testing.T) {
		done := make(chan reply, 1)
		go func() { done <- a.req(t, "spawn", `{"worker_id":"s1","model_id":"m","device":"cpu","wait":"alive"}`) }()
		w := a.waitState(t, "s1", "starting", false)
		if w.PID == 0 || w.Restarts != 0 || !w.ExitedAt.IsZero() {
			t.Errorf("starting entry: %+v", w)
		}
		// A delete before its SIGTERM handler is in place would end it by
		// the signal's default action, not with status 0.
		waitLogLine(t, w.LogPath, "testworker: listening on")
		a.must(t, "delete", `{"worker_id":"s1"}`, nil)
		wantError(t, <-done, wire.CodeWorkerExited, "")
		if _, ok := a.listEntry(t, "s1", false); ok {
			t.Errorf("a deleted worker is listed without all")
		}
		x := a.waitState(t, "s1", "exited", true)
		if x.PID != 0 || x.Signal != "" || x.ExitCode == nil || *x.ExitCode != 0 || x.ExitedAt.IsZero() || x.RanMS <= 0 {
			t.Errorf("exited entry: %+v", x)
		}
	})

	t.Run("loading, then running after not_ready", func(t *testing.T) {
		done := make(chan reply, 1)
		go func() {
			done <- a.req(t, "spawn", `{"worker_id":"l1","model_id":"m@no-health","device":"cpu","wait":"ready","wait_timeout_ms":3000}`)
		}()
		a.waitState(t, "l1", "loading", false)
		wantError(t, <-done, wire.CodeNotReady, "")
		a.waitState(t, "l1", "running", false)
		a.must(t, "delete", `{"worker_id":"l1"}`, nil)
	})

	t.Run("stopping", func(t *testing.T) {
		var sp wire.SpawnResult
		a.must(t, "spawn", `{"worker_id":"t1","model_id":"m@ignore-term","device":"cpu","wait":"exec"}`, &sp)
		a.waitState(t, "t1", "running", false)
		// A SIGTERM before the worker set up its handler ends it at once
		// (seen: the delete was over before a list saw it stopping).
		waitLogLine(t, sp.LogPath, "testworker: ignoring SIGTERM")
		done := make(chan reply, 1)
		go func() { done <- a.req(t, "delete", `{"worker_id":"t1","grace_ms":60000}`) }()
		a.waitState(t, "t1", "stopping", false)
		syscall.Kill(sp.PID, syscall.SIGKILL) // ends the grace
		if r := <-done; !r.OK {
			t.Fatalf("delete: %s", r.raw)
		}
	})

	t.Run("backoff, exited after the delete, id and port free again", func(t *testing.T) {
		var sp wire.SpawnResult
		a.must(t, "spawn", `{"worker_id":"b1","model_id":"m@crash-after=200ms","device":"cpu","wait":"exec","restart":"on-failure","max_restarts":2}`, &sp)
		b := a.waitState(t, "b1", "backoff", false)
		if b.PID != 0 || b.ExitCode == nil || *b.ExitCode != 3 || b.RestartAt.IsZero() || b.Port != sp.Port || b.Restarts != 0 {
			t.Errorf("backoff entry: %+v", b)
		}
		a.must(t, "delete", `{"worker_id":"b1"}`, nil)
		if _, ok := a.listEntry(t, "b1", false); ok {
			t.Errorf("worker listed without all after its restart was cancelled")
		}
		x := a.waitState(t, "b1", "exited", true)
		if !x.RestartAt.IsZero() || x.ExitCode == nil || *x.ExitCode != 3 {
			t.Errorf("exited entry: %+v", x)
		}
		// Same id and port again: the exited entry holds neither.
		a.must(t, "spawn", fmt.Sprintf(`{"worker_id":"b1","model_id":"m","device":"cpu","wait":"exec","port":%d}`, sp.Port), nil)
		var res wire.ListResult
		a.must(t, "list", `{"all":true}`, &res)
		n := 0
		for _, w := range res.Workers {
			if w.WorkerID == "b1" {
				n++
				if w.State != "running" || w.Port != sp.Port {
					t.Errorf("b1 after the new spawn: %+v", w)
				}
			}
		}
		if n != 1 {
			t.Errorf("b1 listed %d times with all, want once", n)
		}
		a.must(t, "delete", `{"worker_id":"b1"}`, nil)
	})
	a.stillServes(t)
}

func TestConsumer_ListAllBadInput(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	wantError(t, a.req(t, "list", `{"all":"yes"}`), wire.CodeBadRequest, "all")
	wantError(t, a.req(t, "list", `{"all":true,"exited":true}`), wire.CodeBadRequest, "exited")
	a.stillServes(t)
}

// list with all is sorted by worker_id like any list (docs/protocol.md):
// an exited worker comes in its place among the running ones, not after
// them.
func TestConsumer_ListAllSortedByID(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	a.must(t, "spawn", `{"worker_id":"z1","model_id":"m","device":"cpu","wait":"exec"}`, nil)
	a.must(t, "spawn", `{"worker_id":"a1","model_id":"m","device":"cpu","wait":"exec"}`, nil)
	a.must(t, "delete", `{"worker_id":"a1"}`, nil)
	a.waitState(t, "a1", "exited", true)
	var res wire.ListResult
	a.must(t, "list", `{"all":true}`, &res)
	var ids []string
	for _, w := range res.Workers {
		ids = append(ids, w.WorkerID+"/"+w.State)
	}
	if len(ids) != 2 || ids[0] != "a1/exited" || ids[1] != "z1/running" {
		t.Errorf("list all: %v, want [a1/exited z1/running]", ids)
	}
	a.must(t, "delete", `{"worker_id":"z1"}`, nil)
	a.stillServes(t)
}
