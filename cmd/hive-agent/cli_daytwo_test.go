package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
)

// lsEntry is worker id's entry in `ls --json` (with -x: exited ones too).
func lsEntry(t *testing.T, url, hive, id string, exited bool) (client.Worker, bool) {
	t.Helper()
	args := []string{"ls", "--json", "-H", hive}
	if exited {
		args = append(args, "-x")
	}
	r := mustCLI(t, url, args...)
	var ls struct{ Workers []client.Worker }
	if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil {
		t.Fatalf("ls --json: %v: %s", err, r)
	}
	for _, w := range ls.Workers {
		if w.WorkerID == id {
			return w, true
		}
	}
	return client.Worker{}, false
}

// A worker adopted after the agent was SIGKILLed is restarted from its
// marker: a new pid, the same id, port and model.
func TestCLI_RestartAdoptedWorker(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	url := s.ClientURL()
	logDir := t.TempDir()
	args := []string{"--hive-id", hive, "--nats-url", url, "--state-dir", t.TempDir()}
	a := startBinary(t, logDir, args...)
	a.waitLog(t, "serving worker commands")
	mustCLI(t, url, "spawn", "-H", hive, "-m", "org/model", "-d", "cpu", "--id", "w1", "--queen-url", "http://q.example:1")
	before, _ := lsEntry(t, url, hive, "w1", false)
	a.stop(t, syscall.SIGKILL)
	b := startBinary(t, logDir, args...)
	b.waitLog(t, "serving worker commands")

	r := mustCLI(t, url, "restart", "-H", hive, "w1", "--grace", "2s")
	for _, want := range []string{"worker_restart_start", "worker_signal_sent", "worker_stopped", "worker_restarted", "worker_restart_done"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("restart narration lacks %s: %s", want, r)
		}
	}
	pid, _ := strconv.Atoi(field(r.stdout, "pid"))
	if field(r.stdout, "previous pid") != strconv.Itoa(before.PID) || pid == before.PID || pid == 0 ||
		field(r.stdout, "port") != strconv.Itoa(before.Port) || field(r.stdout, "model") != "org/model" {
		t.Errorf("restart summary (before: pid %d port %d): %s", before.PID, before.Port, r)
	}
	if testenv.Alive(before.PID) {
		t.Errorf("the adopted pid %d still runs", before.PID)
	}
	after, ok := lsEntry(t, url, hive, "w1", false)
	if !ok || after.PID != pid || after.Restarts != 1 || after.Port != before.Port || after.State == "" {
		t.Errorf("ls after restart: %+v", after)
	}
	if got := testenv.Cmdline(pid); !strings.Contains(strings.Join(got, " "), "--queen-url http://q.example:1") {
		t.Errorf("queen url not kept: %q", got)
	}
	mustCLI(t, url, "stop", "-H", hive, "w1")
	x, ok := lsEntry(t, url, hive, "w1", true)
	if !ok || x.State != "exited" || x.Signal != "" || x.ExitCode == nil || x.ExitedAt.IsZero() {
		t.Errorf("ls -x after stop: %+v", x)
	}
	// A worker stopped a moment ago is started again, as supervisorctl
	// restart starts a stopped program; one never seen is not_found.
	r = mustCLI(t, url, "restart", "-H", hive, "w1")
	if !strings.Contains(r.stderr, "worker_already_exited") || field(r.stdout, "previous pid") != strconv.Itoa(pid) {
		t.Errorf("restart of the stopped w1: %s", r)
	}
	mustCLI(t, url, "stop", "-H", hive, "w1")
	wantCLI(t, runCLI(t, url, "restart", "-H", hive, "w2"), 1, "not_found")
	wantCLI(t, runCLI(t, url, "restart", "-H", hive, "w.1"), 2, "<worker>")
}

// events --since replays a worker's started and exited events from
// HIVE_EVENTS, which the agent created.
func TestCLI_EventsSinceReplays(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATSWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
	url := s.ClientURL()
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", url, "--state-dir", t.TempDir())
	a.waitLog(t, "taking durable intake commands")
	mustCLI(t, url, "spawn", "-H", hive, "-m", "m", "-d", "cpu", "--id", "e1")
	mustCLI(t, url, "stop", "-H", hive, "e1")

	r := mustCLI(t, url, "events", "-H", hive, "--since", "1h")
	var started, exited int = -1, -1
	for i, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[2] != hive {
			t.Fatalf("event line %q: want time, hive, kind, worker, what", line)
		}
		switch {
		case f[3] == "worker.started" && f[4] == "e1":
			started = i
		case f[3] == "worker.exited" && f[4] == "e1":
			exited = i
		}
	}
	if started < 0 || exited < started {
		t.Errorf("want e1's started then exited event: %s", r)
	}
	r = mustCLI(t, url, "events", "--all", "--since", "1h", "--json")
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e client.HiveEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events --json line %q: %v", line, err)
		}
		if e.HiveID == hive && e.WorkerID == "e1" && (e.Kind == "worker.started" || e.Kind == "worker.exited") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("events --all --json: %d of e1's two events: %s", n, r)
	}
	wantCLI(t, runCLI(t, url, "events", "--since", "-1h"), 2, "--since")
}

// drain --stop-workers refuses spawns and stops the hive's workers;
// resume lets spawns through again.
func TestCLI_DrainAndResume(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	url := s.ClientURL()
	args := []string{"--hive-id", hive, "--nats-url", url, "--state-dir", t.TempDir()}
	logDir := t.TempDir()
	a := startBinary(t, logDir, args...)
	a.waitLog(t, "serving worker commands")
	mustCLI(t, url, "spawn", "-H", hive, "-m", "m", "-d", "cpu", "--id", "d1")
	r := mustCLI(t, url, "drain", "-H", hive, "--stop-workers", "--deadline", "200ms")
	if !strings.HasPrefix(field(r.stdout, "draining"), "yes") || field(r.stdout, "stopped") != "d1" {
		t.Errorf("drain summary: %s", r)
	}
	if _, ok := lsEntry(t, url, hive, "d1", false); ok {
		t.Errorf("d1 still listed after drain --stop-workers")
	}
	wantCLI(t, runCLI(t, url, "spawn", "-H", hive, "-m", "m", "-d", "cpu", "--id", "d2"), 1, "draining")
	// The drain outlives a SIGKILL of the agent.
	a.stop(t, syscall.SIGKILL)
	b := startBinary(t, logDir, args...)
	b.waitLog(t, "draining, as an earlier run was told")
	b.waitLog(t, "serving worker commands")
	wantCLI(t, runCLI(t, url, "spawn", "-H", hive, "-m", "m", "-d", "cpu", "--id", "d2"), 1, "draining")
	r = mustCLI(t, url, "resume", "-H", hive)
	if field(r.stdout, "draining") != "no" {
		t.Errorf("resume summary: %s", r)
	}
	mustCLI(t, url, "spawn", "-H", hive, "-m", "m", "-d", "cpu", "--id", "d2")
	mustCLI(t, url, "stop", "-H", hive, "d2")
	wantCLI(t, runCLI(t, url, "drain", "-H", hive, "--deadline", "1s"), 2, "--stop-workers")
}

// The deadline of drain --stop-workers outlives a SIGKILL of the agent:
// the next run stops the workers when it passes, narrated on the drain's
// job, and records that it did, so the run after it stops nothing again.
func TestCLI_DrainDeadlineOutlivesTheAgent(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	url := s.ClientURL()
	stateDir := t.TempDir()
	args := []string{"--hive-id", hive, "--nats-url", url, "--state-dir", stateDir}
	logDir := t.TempDir()
	a := startBinary(t, logDir, args...)
	a.waitLog(t, "serving worker commands")
	k1 := spawnJSON(t, url, "-H", hive, "-m", "m", "-d", "cpu", "--id", "k1")
	drain := startFollower(t, url, "drain", "-H", hive, "--stop-workers", "--deadline", "4s")
	file := filepath.Join(stateDir, "drain", hive+".json")
	var st struct {
		Draining bool   `json:"draining"`
		StopAtMS int64  `json:"stop_at_ms"`
		JobID    string `json:"job_id"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for st.StopAtMS == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no drain with a deadline in %s; drain printed:\n%s\n%s", file, drain.stdout, drain.stderr)
		}
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(file)
		json.Unmarshal(b, &st)
	}
	a.stop(t, syscall.SIGKILL)
	if !testenv.Alive(k1.PID) {
		t.Fatalf("k1 (pid %d) ended with the agent", k1.PID)
	}

	nc := testenv.Connect(t, s)
	narr, err := nc.SubscribeSync("job." + st.JobID + ".narration")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	b := startBinary(t, logDir, args...)
	b.waitLog(t, "the drain's deadline outlived the earlier run")
	if !testenv.WaitGone(k1.PID, 30*time.Second) {
		t.Fatalf("k1 (pid %d) still runs 30 s after the drain's deadline", k1.PID)
	}
	if time.Now().Before(time.UnixMilli(st.StopAtMS)) {
		t.Errorf("k1 was stopped before the deadline (%s)", time.UnixMilli(st.StopAtMS).UTC())
	}
	var actions []string
	for !slices.Contains(actions, "agent_drained") {
		m, err := narr.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("narration of the drain's job %s: %v; got %v", st.JobID, err, actions)
		}
		var e struct{ Action string }
		json.Unmarshal(m.Data, &e)
		actions = append(actions, e.Action)
	}
	if !slices.Contains(actions, "worker_stopped") {
		t.Errorf("the drain's job narrated %v, want worker_stopped before agent_drained", actions)
	}
	b.waitLog(t, "kind=agent.drain")
	if data, _ := os.ReadFile(file); strings.Contains(string(data), "stop_at_ms") || !strings.Contains(string(data), `"draining":true`) {
		t.Errorf("drain file after the stop: %s; want draining without a pending stop", data)
	}
	b.stop(t, syscall.SIGTERM)
	c := startBinary(t, logDir, args...)
	c.waitLog(t, "draining, as an earlier run was told")
	c.waitLog(t, "serving worker commands")
	mustCLI(t, url, "resume", "-H", hive)
	if strings.Contains(c.out.String(), "outlived") {
		t.Errorf("the third run took on the deadline again:\n%s", c.out)
	}
}
