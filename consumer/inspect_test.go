//go:build unix

package consumer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

func TestConsumer_ListZeroOneTwenty(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	var res wire.ListResult
	r := a.must(t, "list", "", &res)
	if len(res.Workers) != 0 || !strings.Contains(string(r.raw), `"workers":[]`) {
		t.Fatalf("empty hive: got %s, want workers: []", r.raw)
	}
	for _, n := range []int{1, 20} {
		for i := len(res.Workers); i < n; i++ {
			a.must(t, "spawn", fmt.Sprintf(`{"job_id":"job-%02d","worker_id":"w%02d","model_id":"org/model-%d","device":"cpu","wait":"exec"}`, i, i, i), nil)
		}
		before := time.Now()
		a.must(t, "list", "", &res)
		if len(res.Workers) != n {
			t.Fatalf("got %d workers, want %d", len(res.Workers), n)
		}
		for i, w := range res.Workers {
			want := fmt.Sprintf("w%02d", i)
			if w.WorkerID != want {
				t.Errorf("worker %d: id %q, want %q (sorted by id)", i, w.WorkerID, want)
			}
			checkAgainstProcess(t, w, before)
			if w.ModelID != fmt.Sprintf("org/model-%d", i) || w.JobID != fmt.Sprintf("job-%02d", i) {
				t.Errorf("%s: model %q job %q", w.WorkerID, w.ModelID, w.JobID)
			}
		}
	}
	for _, w := range res.Workers {
		a.must(t, "delete", `{"worker_id":"`+w.WorkerID+`"}`, nil)
	}
	a.must(t, "list", "", &res)
	if len(res.Workers) != 0 {
		t.Errorf("after deleting all: got %d workers", len(res.Workers))
	}
}

// checkAgainstProcess compares a listed worker with what /proc says.
func checkAgainstProcess(t *testing.T, w wire.WorkerInfo, listedAt time.Time) {
	t.Helper()
	if !testenv.Alive(w.PID) {
		t.Errorf("%s: pid %d not running", w.WorkerID, w.PID)
		return
	}
	args := testenv.Cmdline(w.PID)
	want := []string{w.BinaryPath, "--worker-id", w.WorkerID, "--model", w.ModelID, "--device", w.Device,
		"--port", strconv.Itoa(w.Port), "--queen-url", "http://localhost:7833"}
	if !slices.Equal(args, want) {
		t.Errorf("%s: process runs %q, list says %q", w.WorkerID, args, want)
	}
	if pg, _ := syscall.Getpgid(w.PID); pg != w.PID {
		t.Errorf("%s: pid %d is not its group leader (pgid %d)", w.WorkerID, w.PID, pg)
	}
	if w.WorkerType != "cpu-llm" || w.Device != "cpu" || filepath.Base(w.BinaryPath) != "cpu-llm-worker-rbee" {
		t.Errorf("%s: type %q device %q binary %q", w.WorkerID, w.WorkerType, w.Device, w.BinaryPath)
	}
	if w.RSSBytes == 0 || w.UptimeMS < 0 {
		t.Errorf("%s: rss %d uptime %d", w.WorkerID, w.RSSBytes, w.UptimeMS)
	}
	if started := w.StartedAt.Time; started.IsZero() || started.After(listedAt.Add(time.Second)) {
		t.Errorf("%s: started_at %q (listed at %s)", w.WorkerID, w.StartedAt, listedAt)
	}
	if filepath.Base(w.LogPath) != w.WorkerID+".log" {
		t.Errorf("%s: log path %q", w.WorkerID, w.LogPath)
	}
}

func TestConsumer_GetReturnsLogTail(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"chatty","model_id":"m@lines=100","device":"cpu","wait":"ready"}`, &sp)
	var got wire.GetResult
	a.must(t, "get", `{"worker_id":"chatty"}`, &got)
	if got.PID != sp.PID || got.Port != sp.Port || got.LogPath != sp.LogPath {
		t.Errorf("get: got %+v, spawn said %+v", got.WorkerInfo, sp)
	}
	if len(got.LogTail) != commands.DefaultLogLines {
		t.Errorf("default log tail: got %d lines, want %d", len(got.LogTail), commands.DefaultLogLines)
	}
	a.must(t, "get", `{"worker_id":"chatty","log_lines":2}`, &got)
	if want := []string{"line 100", "testworker: listening on 127.0.0.1:" + strconv.Itoa(sp.Port)}; !slices.Equal(got.LogTail, want) {
		t.Errorf("log tail: got %q, want %q", got.LogTail, want)
	}
	a.must(t, "delete", `{"worker_id":"chatty"}`, nil)
	wantError(t, a.req(t, "get", `{"worker_id":"chatty"}`), wire.CodeNotFound, "")
}

func TestConsumer_RespawnKeepsPreviousLog(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	var first, second wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"again","model_id":"first-model","device":"cpu","wait":"ready"}`, &first)
	a.must(t, "delete", `{"worker_id":"again"}`, nil)
	a.must(t, "spawn", `{"worker_id":"again","model_id":"second-model","device":"cpu"}`, &second)
	var got wire.GetResult
	a.must(t, "get", `{"worker_id":"again","log_lines":1000}`, &got)
	log := strings.Join(got.LogTail, "\n")
	if !strings.Contains(log, "second-model") || strings.Contains(log, "first-model") {
		t.Errorf("new log should hold only the new worker's output:\n%s", log)
	}
	prev := readFile(t, first.LogPath+".1")
	if !strings.Contains(prev, "first-model") || !strings.Contains(prev, "got SIGTERM") {
		t.Errorf("previous log not kept as .1:\n%s", prev)
	}
	a.must(t, "delete", `{"worker_id":"again"}`, nil)
}

func TestConsumer_HivesSeeOnlyTheirOwnWorkers(t *testing.T) {
	s := testenv.NATS(t)
	a := startAgent(t, s)
	b := startAgent(t, s, func(o *agentOpts) { o.portMin, o.portMax = 9600, 9699 })
	var wa, wb wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"shared-name","model_id":"m","device":"cpu"}`, &wa)
	b.must(t, "spawn", `{"worker_id":"shared-name","model_id":"m","device":"cpu"}`, &wb)
	b.must(t, "spawn", `{"worker_id":"only-b","model_id":"m","device":"cpu"}`, nil)

	var la, lb wire.ListResult
	a.must(t, "list", "", &la)
	b.must(t, "list", "", &lb)
	if len(la.Workers) != 1 || la.Workers[0].PID != wa.PID {
		t.Errorf("hive a lists %+v, want only its own worker pid %d", la.Workers, wa.PID)
	}
	if len(lb.Workers) != 2 {
		t.Errorf("hive b lists %d workers, want 2", len(lb.Workers))
	}
	wantError(t, a.req(t, "get", `{"worker_id":"only-b"}`), wire.CodeNotFound, "")
	wantError(t, a.req(t, "delete", `{"worker_id":"only-b"}`), wire.CodeNotFound, "")
	var del wire.DeleteResult
	a.must(t, "delete", `{"worker_id":"shared-name"}`, &del)
	if del.PID != wa.PID || !testenv.Alive(wb.PID) {
		t.Errorf("hive a's delete stopped pid %d; hive b's worker %d alive: %v", del.PID, wb.PID, testenv.Alive(wb.PID))
	}
	b.must(t, "delete", `{"worker_id":"shared-name"}`, nil)
	b.must(t, "delete", `{"worker_id":"only-b"}`, nil)
}

// A process that looks like a worker (same binary, same command line, its
// own process group) but lacks the marker is never listed nor signalled.
func TestConsumer_LookalikeWithoutMarkerIsLeftAlone(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	cmd := exec.Command(filepath.Join(workerDir, "cpu-llm-worker-rbee"), "--worker-id", "decoy", "--model", "m",
		"--device", "cpu", "--port", "9698", "--queen-url", "http://localhost:7833")
	cmd.Env = []string{"HIVE_AGENT_WORKER_ID=decoy"} // a partial marker: no hive
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var res wire.ListResult
	a.must(t, "list", "", &res)
	if len(res.Workers) != 0 {
		t.Errorf("list shows %+v, want nothing", res.Workers)
	}
	wantError(t, a.req(t, "get", `{"worker_id":"decoy"}`), wire.CodeNotFound, "")
	wantError(t, a.req(t, "delete", `{"worker_id":"decoy","grace_ms":0}`), wire.CodeNotFound, "")
	time.Sleep(50 * time.Millisecond)
	if !testenv.Alive(cmd.Process.Pid) {
		t.Errorf("the lookalike process %d was signalled", cmd.Process.Pid)
	}
}

func TestConsumer_MicroServiceDiscovery(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	msg, err := a.client.Request("$SRV.INFO.hive-agent", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	body := string(msg.Data)
	for _, want := range []string{`"name":"hive-agent"`, `"hive_id":"` + a.hive + `"`, `"hive.` + a.hive + `.worker.spawn"`, `"queue_group":"q"`, `"version":"0.0.1"`,
		`"hive.` + a.hive + `.worker.logs"`, `"pid":"` + strconv.Itoa(os.Getpid()) + `"`, `"host":"`} {
		if !strings.Contains(body, want) {
			t.Errorf("service info lacks %s: %s", want, body)
		}
	}
	a.req(t, "get", `{"worker_id":"nobody"}`)
	a.req(t, "get", `{"worker_id":"a.b"}`)
	a.req(t, "reboot", `{}`)
	a.stillServes(t)
	msg, err = a.client.Request("$SRV.STATS.hive-agent", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Endpoints []struct {
			Name        string         `json:"name"`
			NumRequests int            `json:"num_requests"`
			Data        wire.StatsData `json:"data"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		t.Fatal(err)
	}
	got := map[string]wire.StatsData{}
	for _, e := range st.Endpoints {
		got[e.Name] = e.Data
	}
	if len(st.Endpoints) != 8 {
		t.Errorf("stats has %d endpoints, want spawn, delete, list, get, logs, restart, drain, resume", len(st.Endpoints))
	}
	if g := got["get"]; g.Commands != 2 || g.Errors["not_found"] != 1 || g.Errors["bad_request"] != 1 || g.UnknownCommands != 1 {
		t.Errorf("get endpoint stats: got %+v", g)
	}
	if l := got["list"]; l.Commands != 1 || len(l.Errors) != 0 {
		t.Errorf("list endpoint stats: got %+v", l)
	}
}

// Two agents started by mistake with the same hive id never both execute a
// command: they share a queue group.
func TestConsumer_SameHiveTwiceExecutesOnce(t *testing.T) {
	s := testenv.NATS(t)
	a := startAgent(t, s)
	b := startAgent(t, s, func(o *agentOpts) { o.hive = a.hive })
	_ = b
	for i := 0; i < 6; i++ {
		inbox := a.client.NewRespInbox()
		sub, err := a.client.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		cmd := []string{"list", "nonsense"}[i%2]
		a.client.PublishRequest(a.subject(cmd), inbox, []byte(`{}`))
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("%s: no reply: %v", cmd, err)
		}
		if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
			t.Errorf("%s answered twice; second reply: %s", cmd, m.Data)
		}
		sub.Unsubscribe()
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}
