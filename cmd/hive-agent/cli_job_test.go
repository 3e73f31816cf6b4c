package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/internal/testenv"
)

// `setup` creates the streams (and a hive's consumer) before any agent ran;
// commands queued to that hive's intake then wait for it, and `job -f`
// prints their narration and result once an agent has run them. A stored
// job is read back later with `job`.
func TestCLI_SetupAndJob(t *testing.T) {
	s := jsServer(t)
	url := s.ClientURL()
	hive := newHive(t)
	r := mustCLI(t, url, "setup", "--hive", hive)
	if !strings.Contains(r.stdout, "HIVE_INTAKE") || !strings.Contains(r.stdout, "HIVE_JOBS") || !strings.Contains(r.stdout, "hive-agent-"+hive) {
		t.Errorf("setup output: %s", r)
	}
	if r := mustCLI(t, url, "setup", "--hive", hive); !strings.Contains(r.stdout, "existing") {
		t.Errorf("second setup: %s", r)
	}

	nc := testenv.Connect(t, s)
	if err := nc.Publish("hive."+hive+".intake.worker.spawn", []byte(`{"job_id":"queued-1","worker_id":"w1","model_id":"m","device":"cpu","wait":"exec"}`)); err != nil {
		t.Fatal(err)
	}
	// A command known only by its Nats-Msg-Id, as docs/intake.md allows.
	m := nats.NewMsg("hive." + hive + ".intake.worker.list")
	m.Header.Set("Nats-Msg-Id", "by-msg-id")
	m.Data = []byte(`{}`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	// Nothing ran them yet: no stored result, and `job` says they wait in
	// the intake, which "unknown" would not.
	wantCLI(t, runCLI(t, url, "job", "queued-1"), 3,
		"job queued-1 is still queued in the intake (hive."+hive+".intake.worker.spawn, HIVE_INTAKE sequence 1): no agent has taken it yet")
	wantCLI(t, runCLI(t, url, "job", "by-msg-id"), 3,
		"job by-msg-id is still queued in the intake (hive."+hive+".intake.worker.list, HIVE_INTAKE sequence 2)")
	if r := runCLI(t, url, "job", "unknown-1"); r.code != 3 || strings.Contains(r.stderr, "queued") || !strings.Contains(r.stderr, "nothing stored") {
		t.Errorf("job of an unknown id: %s", r)
	}

	startAgent(t, s, hive)
	r = mustCLI(t, url, "job", "queued-1", "-f", "--timeout", "30s")
	if !strings.Contains(r.stderr, "worker_spawn_start") || !strings.Contains(r.stderr, "worker_spawned") ||
		!strings.Contains(r.stdout, `"worker_id":"w1"`) {
		t.Errorf("job -f: %s", r)
	}
	r = mustCLI(t, url, "job", "queued-1", "--json")
	if !strings.Contains(r.stdout, `"ok":true`) || !strings.Contains(r.stdout, `"kind":"worker.spawn"`) {
		t.Errorf("job --json: %s", r)
	}
	// A stored failure reads back as the agent's error, exit 1.
	nc.Publish("hive."+hive+".intake.worker.delete", []byte(`{"job_id":"queued-2","worker_id":"nobody"}`))
	nc.Flush()
	r = runCLI(t, url, "job", "queued-2", "-f", "--timeout", "30s")
	wantCLI(t, r, 1, "error: not_found")
	// A spawn from the CLI under a job id of the caller's, read back by it.
	mustCLI(t, url, "spawn", "--hive", hive, "--model", "m", "--device", "cpu", "--id", "w3", "--wait", "exec", "--job", "cli-job")
	if r := mustCLI(t, url, "job", "cli-job"); !strings.Contains(r.stderr, "worker_spawned") || !strings.Contains(r.stdout, `"worker_id":"w3"`) {
		t.Errorf("job of a CLI spawn: %s", r)
	}
	mustCLI(t, url, "stop", "w3", "--hive", hive)
	// --restart reaches the agent: a crashing worker comes back once, as
	// its job's narration tells.
	wantCLI(t, runCLI(t, url, "spawn", "--hive", hive, "--model", "m", "--device", "cpu", "--restart", "always"), 2, "--restart")
	mustCLI(t, url, "spawn", "--hive", hive, "--model", "m@crash-after=200ms", "--device", "cpu", "--id", "w4", "--wait", "exec",
		"--restart", "on-failure", "--max-restarts", "1", "--job", "crashy")
	deadline := time.Now().Add(20 * time.Second)
	for r = runCLI(t, url, "job", "crashy"); strings.Count(r.stderr, "worker_exited") < 2 && time.Now().Before(deadline); r = runCLI(t, url, "job", "crashy") {
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Count(r.stderr, "worker_restarted") != 1 || strings.Count(r.stderr, "worker_exited") != 2 {
		t.Errorf("job of a worker restarted once: %s", r)
	}
	mustCLI(t, url, "stop", "w1", "--hive", hive)
	wantCLI(t, runCLI(t, url, "job", "never-ran"), 3, "never-ran")
}

// Without JetStream there is nothing stored: job and setup exit 3 saying so.
func TestCLI_JobWithoutJetStream(t *testing.T) {
	s := testenv.NATS(t)
	wantCLI(t, runCLI(t, s.ClientURL(), "job", "j1", "--timeout", "5s"), 3)
	wantCLI(t, runCLI(t, s.ClientURL(), "setup"), 3, "JetStream")
}
