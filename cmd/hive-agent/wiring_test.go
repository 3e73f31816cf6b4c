//go:build unix

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// A second agent for a hive id that a live agent already serves refuses to
// start, naming the first; the first keeps serving.
func TestAgent_SecondAgentOfAHiveExits1(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	nc := testenv.Connect(t, s)
	first := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL())
	first.waitLog(t, "serving worker commands")
	second := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL())
	if code := second.wait(t); code != 1 {
		t.Fatalf("second agent: exit %d, want 1", code)
	}
	host, _ := os.Hostname()
	want := "another agent already serves hive " + hive
	if out := second.out.String(); !strings.Contains(out, want) || !strings.Contains(out, host) ||
		!strings.Contains(out, "pid "+strconv.Itoa(first.cmd.Process.Pid)) {
		t.Errorf("second agent's output does not name the first (host %s, pid %d):\n%s", host, first.cmd.Process.Pid, out)
	}
	if got := listPIDs(t, nc, hive); len(got) != 0 {
		t.Errorf("first agent: list %v", got)
	}
	// Another hive id on the same system is fine.
	other := startBinary(t, t.TempDir(), "--hive-id", newHive(t), "--nats-url", s.ClientURL())
	other.waitLog(t, "serving worker commands")
}

// --metrics-listen serves Prometheus metrics whose counts follow the
// commands answered and the workers running.
func TestAgent_Metrics(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	nc := testenv.Connect(t, s)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL(), "--metrics-listen", addr)
	a.waitLog(t, "serving Prometheus metrics")
	var sp wire.SpawnResult
	request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"w1","model_id":"m","device":"cpu","wait":"exec"}`, &sp)
	listPIDs(t, nc, hive)
	msg, err := nc.Request("hive."+hive+".worker.delete", []byte(`{"worker_id":"nope"}`), 10*time.Second)
	if err != nil || !strings.Contains(string(msg.Data), `"not_found"`) {
		t.Fatalf("delete of an unknown worker: %v %s", err, msg.Data)
	}
	// A command leaves its slot just after its reply: the scrape may come
	// between the two.
	body := scrape(t, "http://"+addr+"/metrics")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(body, "hive_agent_commands_in_flight 0") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		body = scrape(t, "http://"+addr+"/metrics")
	}
	for _, want := range []string{
		`hive_agent_commands_total{code="ok",kind="worker.spawn"} 1`,
		`hive_agent_commands_total{code="ok",kind="worker.list"} 1`,
		`hive_agent_commands_total{code="not_found",kind="worker.delete"} 1`,
		`hive_agent_command_duration_seconds_count{kind="worker.spawn"} 1`,
		`hive_agent_workers{device="cpu",state="running",worker_type="cpu-llm"} 1`,
		"hive_agent_commands_in_flight 0",
		`hive_agent_build_info{go_version="go`,
		"hive_agent_nats_connected 1",
		"hive_agent_nats_reconnects_total 0",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"w1"}`, nil)
	// The test worker exits 0 on SIGTERM once its handler is installed;
	// a delete that comes before (wait: exec returns right after the
	// exec) ends it by the signal's default action.
	oneExit := func(body string) bool {
		return strings.Contains(body, `hive_agent_worker_exits_total{cause="exited"} 1`) !=
			strings.Contains(body, `hive_agent_worker_exits_total{cause="signaled"} 1`)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !oneExit(body) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		body = scrape(t, "http://"+addr+"/metrics")
	}
	if !oneExit(body) || strings.Count(body, "hive_agent_worker_exits_total{") != 1 || strings.Contains(body, "hive_agent_workers{") {
		t.Errorf("after the delete: want one exit (exited or signaled) and no workers; got:\n%s", grepMetrics(body))
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepMetrics(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "hive_agent_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A worker started by an agent that was then killed is adopted by the next
// agent: when it exits, the exited event says adopted.
func TestAgent_AdoptsWorkersOfAnEarlierRun(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	nc := testenv.Connect(t, s)
	logDir := t.TempDir()
	a := startBinary(t, logDir, "--hive-id", hive, "--nats-url", s.ClientURL())
	a.waitLog(t, "serving worker commands")
	var sp wire.SpawnResult
	request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"old","model_id":"m","device":"cpu","wait":"exec"}`, &sp)
	a.stop(t, syscall.SIGKILL)

	exited, err := nc.SubscribeSync("hive." + hive + ".events.worker.exited")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	b := startBinary(t, logDir, "--hive-id", hive, "--nats-url", s.ClientURL())
	b.waitLog(t, "found running workers of this hive from an earlier run; watching them")
	syscall.Kill(sp.PID, syscall.SIGKILL) // from outside, as the OOM killer would
	msg, err := exited.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no exited event for the adopted worker: %v", err)
	}
	var ev struct {
		WorkerID string `json:"worker_id"`
		PID      int    `json:"pid"`
		Adopted  bool   `json:"adopted"`
		ExitCode *int   `json:"exit_code"`
	}
	if json.Unmarshal(msg.Data, &ev); ev.WorkerID != "old" || ev.PID != sp.PID || !ev.Adopted || ev.ExitCode != nil {
		t.Errorf("exited event: %s; want worker old, pid %d, adopted, no exit_code", msg.Data, sp.PID)
	}
}
