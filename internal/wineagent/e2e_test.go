//go:build linux

package wineagent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/internal/testenv"
)

// The Windows agent under Wine, with a Linux NATS server and the Windows
// test worker: spawn (wait ready), list, get, delete after the grace (Wine
// runs no console control handler, so TERMINATE), a worker whose child
// goes with it, a worker that crashes at start, the agent killed and
// started again (the worker adopted, then deleted), nothing left over.
func TestWine_AgentEndToEnd(t *testing.T) {
	if why := wineReady(); why != "" {
		if os.Getenv("HIVE_WINE_REQUIRED") != "" {
			t.Fatal("HIVE_WINE_REQUIRED is set, but Wine cannot run the Windows agent here: " + why)
		}
		t.Skip("Wine cannot run the Windows agent here: " + why)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "hive-agent.exe")
	workers := filepath.Join(dir, "workers")
	buildWindows(t, exe, "./cmd/hive-agent")
	buildWindows(t, filepath.Join(workers, "cpu-llm-worker-rbee.exe"), "./internal/testworker")
	// Short pings: wineserver sometimes keeps a killed Wine process's
	// socket open (seen: the agent's connection held by wineserver64 for
	// over a minute), and the server then drops it as a stale connection.
	s := testenv.NATSWith(t, &server.Options{PingInterval: time.Second, MaxPingsOut: 2})
	nc := testenv.Connect(t, s)
	hive := testenv.HiveID(t)
	t.Cleanup(func() {
		if left := winePids(dir); len(left) > 0 {
			killAll(left)
			t.Errorf("worker processes left running: %v", left)
		}
	})
	args := []string{"--hive-id", hive, "--nats-url", s.ClientURL(), "--worker-dir", workers,
		"--log-dir", filepath.Join(dir, "logs"), "--port-range", "23300-23399"}
	base := s.NumClients()
	a := startAgent(t, exe, args...)
	subj := func(cmd string) string { return "hive." + hive + ".worker." + cmd }

	var sp commands.SpawnResult
	mustCall(t, nc, subj("spawn"), `{"worker_id":"w1","model_id":"m","device":"cpu","wait":"ready"}`, &sp)
	if sp.PID <= 0 || sp.Port < 23300 || sp.Port > 23399 {
		t.Fatalf("spawn: %+v", sp)
	}
	var ls commands.ListResult
	mustCall(t, nc, subj("list"), ``, &ls)
	if len(ls.Workers) != 1 || ls.Workers[0].WorkerID != "w1" || ls.Workers[0].PID != sp.PID {
		t.Fatalf("list: %+v, want w1 pid %d", ls.Workers, sp.PID)
	}
	var g commands.GetResult
	mustCall(t, nc, subj("get"), `{"worker_id":"w1","log_lines":20}`, &g)
	if g.PID != sp.PID || len(g.LogTail) == 0 {
		t.Errorf("get: %+v", g)
	}
	t.Logf("get w1: pid %d port %d, log tail %q", g.PID, g.Port, g.LogTail)
	var del commands.DeleteResult
	mustCall(t, nc, subj("delete"), `{"worker_id":"w1","grace_ms":1000}`, &del)
	if del.PID != sp.PID || del.Signal != "TERMINATE" {
		t.Errorf("delete w1: %+v, want pid %d signal TERMINATE (Wine delivers no CTRL_BREAK)", del, sp.PID)
	}
	if r := call(t, nc, subj("get"), `{"worker_id":"w1"}`); r.OK || r.Error == nil || r.Error.Code != "not_found" {
		t.Errorf("get after delete: %+v, want not_found", r)
	}

	// A worker with a child: delete takes the whole tree.
	mustCall(t, nc, subj("spawn"), `{"worker_id":"tree","model_id":"m@fork","device":"cpu","wait":"ready"}`, &sp)
	if pids := winePids(dir); len(pids) != 2 {
		t.Errorf("worker with a child: worker processes %v, want 2", pids)
	}
	mustCall(t, nc, subj("delete"), `{"worker_id":"tree","grace_ms":500}`, &del)
	if del.Signal != "TERMINATE" {
		t.Errorf("delete tree: %+v", del)
	}
	waitNoWinePids(t, dir, "deleting the worker with a child")

	// A worker that crashes at start.
	r := call(t, nc, subj("spawn"), `{"worker_id":"crash","model_id":"m@crash","device":"cpu","wait":"ready"}`)
	if r.OK || r.Error == nil || r.Error.Code != commands.CodeWorkerExited {
		t.Errorf("spawn of a crashing worker: %+v, want %s", r, commands.CodeWorkerExited)
	} else {
		t.Logf("crashing worker: %s: %s", r.Error.Code, r.Error.Message)
	}
	// The agent still serves the next command.
	mustCall(t, nc, subj("list"), ``, &ls)

	// The agent killed, the worker kept, the next agent adopts it.
	mustCall(t, nc, subj("spawn"), `{"worker_id":"kept","model_id":"m","device":"cpu","wait":"ready"}`, &sp)
	a.kill()
	// The killed agent's connection must be gone before a request could
	// land on its subscription (seen: a list timed out while wineserver
	// held the dead agent's socket).
	waitClients(t, s, base, "the killed agent's NATS connection to close")
	if len(winePids(dir)) != 1 {
		t.Fatalf("after the agent was killed: worker processes %v, want the worker", winePids(dir))
	}
	b := startAgent(t, exe, args...)
	mustCall(t, nc, subj("list"), ``, &ls)
	if len(ls.Workers) != 1 || ls.Workers[0].WorkerID != "kept" || ls.Workers[0].PID != sp.PID {
		t.Fatalf("list after the restart: %+v, want kept pid %d", ls.Workers, sp.PID)
	}
	mustCall(t, nc, subj("delete"), `{"worker_id":"kept","grace_ms":500}`, &del)
	if del.PID != sp.PID || del.Signal != "TERMINATE" {
		t.Errorf("delete of the adopted worker: %+v", del)
	}
	waitNoWinePids(t, dir, "deleting the adopted worker")
	t.Logf("agent output:\n%s", b.output())
}
