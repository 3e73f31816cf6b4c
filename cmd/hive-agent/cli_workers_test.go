package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
)

// tableRows returns the worker ids of an ls table, in the order shown.
func tableRows(t *testing.T, table string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "HIVE") {
		t.Fatalf("not an ls table: %q", table)
	}
	var ids []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 8 {
			t.Fatalf("short row %q in table %q", l, table)
		}
		ids = append(ids, f[0]+"/"+f[1])
	}
	return ids
}

// field returns the value of "key: value" in a summary.
func field(out, key string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:\s+(.*)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// The client commands on one hive, end to end against a real agent and
// real workers: narration on stderr before the result on stdout, summary,
// table and --json output, natural order, flags after the worker argument,
// and the agent's errors as exit 1.
func TestCLI_WorkerCommands(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	startAgent(t, s, hive)
	url := s.ClientURL()

	// Narration on stderr, a readable summary on stdout.
	r := mustCLI(t, url, "spawn", "--hive", hive, "--model", "m", "--device", "cpu", "--id", "w10")
	for _, want := range []string{"worker_spawn_start", "worker_process_started", "worker_spawned", "Worker w10 is running"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("spawn narration lacks %q: %s", want, r)
		}
	}
	if field(r.stdout, "worker") != "w10" || field(r.stdout, "hive") != hive || field(r.stdout, "pid") == "" ||
		field(r.stdout, "waited") != "alive" || strings.Contains(r.stdout, "worker_spawn") {
		t.Errorf("spawn summary: %s", r)
	}

	// --json: the reply on stdout, parsable, nothing else there.
	r = mustCLI(t, url, "spawn", "-H", hive, "-m", "m", "-d", "cpu", "--id", "w2", "--json", "--wait", "ready")
	var sp client.Reply[client.SpawnResult]
	if err := json.Unmarshal([]byte(r.stdout), &sp); err != nil || !sp.OK || sp.Kind != "worker.spawn" ||
		sp.HiveID != hive || sp.JobID == "" || sp.Result.WorkerID != "w2" || sp.Result.PID == 0 || sp.Result.Wait != "ready" {
		t.Errorf("spawn --json: %v: %s", err, r)
	}
	if !strings.Contains(r.stderr, "worker_waiting_ready") || !strings.Contains(r.stderr, "worker_ready") {
		t.Errorf("spawn --wait ready narration: %s", r)
	}

	// Every narration line comes before the result: both streams to one file.
	out, err := os.Create(filepath.Join(t.TempDir(), "both"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := cliCommand(t, url, "spawn", "--model", "m", "--id", "w1", "--json", "--device", "cpu", "--hive", hive)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		t.Fatalf("spawn w1: %v", err)
	}
	both, _ := os.ReadFile(out.Name())
	narr, result := strings.LastIndex(string(both), "worker_spawned"), strings.Index(string(both), `{"ok":true`)
	if narr < 0 || result < 0 || narr > result {
		t.Errorf("narration must come before the result:\n%s", both)
	}

	// The table in natural order; JSON with hive ids.
	r = mustCLI(t, url, "ls", "--hive", hive)
	if got, want := strings.Join(tableRows(t, r.stdout), " "), hive+"/w1 "+hive+"/w2 "+hive+"/w10"; got != want {
		t.Errorf("ls rows: got %q, want %q: %s", got, want, r)
	}
	r = mustCLI(t, url, "ls", "--json", "-H", hive)
	var ls struct{ Workers []client.Worker }
	if err := json.Unmarshal([]byte(r.stdout), &ls); err != nil || len(ls.Workers) != 3 {
		t.Fatalf("ls --json: %v: %s", err, r)
	}
	for i, id := range []string{"w1", "w2", "w10"} {
		if w := ls.Workers[i]; w.WorkerID != id || w.HiveID != hive || w.PID == 0 || w.Port == 0 {
			t.Errorf("ls --json entry %d: got %+v, want %s of hive %s", i, w, id, hive)
		}
	}

	// get and logs: flags before or after the worker argument.
	r = mustCLI(t, url, "get", "w2", "--hive", hive, "-n", "5")
	if field(r.stdout, "worker") != "w2" || field(r.stdout, "pid") != strconv.Itoa(sp.Result.PID) || !strings.Contains(r.stdout, "testworker w2 pid") {
		t.Errorf("get w2: %s", r)
	}
	r = mustCLI(t, url, "get", "--hive", hive, "--json", "w2")
	var g client.WorkerDetail
	if err := json.Unmarshal([]byte(r.stdout), &g); err != nil || g.WorkerID != "w2" || g.HiveID != hive || len(g.LogTail) == 0 {
		t.Errorf("get --json: %v: %s", err, r)
	}
	r = mustCLI(t, url, "logs", "w2", "-H", hive, "-n", "5")
	if !strings.Contains(r.stdout, "testworker w2 pid") || field(r.stdout, "pid") != "" {
		t.Errorf("logs: %s", r)
	}

	// The agent's errors: exit 1, `error: <code>: <message>`, and the
	// agent serves the next command.
	r = runCLI(t, url, "stop", "nosuch", "--hive", hive)
	wantCLI(t, r, exitFailure, "worker_delete_start", "error: not_found: ")
	if r.stdout != "" {
		t.Errorf("a failed stop wrote to stdout: %s", r)
	}
	r = runCLI(t, url, "spawn", "-H", hive, "-m", "m@crash", "-d", "cpu", "--id", "crasher")
	wantCLI(t, r, exitFailure, "worker_spawn_start", "error: worker_exited: ")
	r = runCLI(t, url, "spawn", "-H", hive, "-m", "m", "-d", "cpu", "--id", "w1")
	wantCLI(t, r, exitFailure, "error: conflict: ")
	// With --wait ready, --timeout is the agent's ready bound.
	r = runCLI(t, url, "spawn", "-H", hive, "-m", "m@no-health", "-d", "cpu", "--id", "deaf", "--wait", "ready", "--timeout", "1s")
	wantCLI(t, r, exitFailure, "Waiting up to 1s", "error: not_ready: ")
	mustCLI(t, url, "stop", "deaf", "-H", hive) // not ready is not dead: it stays until stopped
	mustCLI(t, url, "ls", "--hive", hive)

	// stop: narration, then the summary or the reply.
	r = mustCLI(t, url, "stop", "w10", "--hive", hive, "--grace", "2s")
	if !strings.Contains(r.stderr, "worker_delete_start") || !strings.Contains(r.stderr, "worker_deleted") ||
		field(r.stdout, "worker") != "w10" || field(r.stdout, "signal") != "SIGTERM" {
		t.Errorf("stop w10: %s", r)
	}
	r = mustCLI(t, url, "stop", "--json", "w2", "-H", hive)
	var del client.Reply[client.DeleteResult]
	if err := json.Unmarshal([]byte(r.stdout), &del); err != nil || !del.OK || del.Result.WorkerID != "w2" || del.Result.PID != sp.Result.PID {
		t.Errorf("stop --json: %v: %s", err, r)
	}
	mustCLI(t, url, "stop", "w1", "-H", hive)
	if !testenv.WaitGone(sp.Result.PID, 5*time.Second) {
		t.Errorf("w2 (pid %d) still running after stop", sp.Result.PID)
	}
	r = mustCLI(t, url, "ls", "--hive", hive)
	if rows := tableRows(t, r.stdout); len(rows) != 0 {
		t.Errorf("ls after stopping every worker: %s", r)
	}
}

// Ctrl-C during a spawn stops the client (exit 130), which says where the
// outcome of the job the agent carries on with will go.
func TestCLI_InterruptedSpawn(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	startAgent(t, s, hive)
	f := startFollower(t, s.ClientURL(), "spawn", "-H", hive, "-m", "m@no-health", "-d", "cpu", "--wait", "ready")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(f.stderr.String(), "worker_waiting_ready") {
		if time.Now().After(deadline) {
			t.Fatalf("spawn never narrated its wait; stderr:\n%s", f.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.cmd.Process.Signal(syscall.SIGINT)
	if code := f.wait(t); code != exitInterrupted || !strings.Contains(f.stderr.String(), "carries on with job ") ||
		!regexp.MustCompile("`hive-agent job [0-9a-f-]{36} -f` waits for its outcome").MatchString(f.stderr.String()) || f.stdout.String() != "" {
		t.Errorf("interrupted spawn: exit %d, want %d; stdout %q; stderr:\n%s", code, exitInterrupted, f.stdout, f.stderr)
	}
}
