package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

var agentBin, workerDir string

func TestMain(m *testing.M) {
	testenv.Main(m, func(dir string) (err error) {
		workerDir = dir
		// Agents with an embedded server store JetStream data here, never
		// in the user's state directory.
		os.Setenv("HIVE_JETSTREAM_DIR", filepath.Join(dir, "jetstream"))
		agentBin, err = testenv.BuildAgent(dir)
		return err
	})
}

// proc is a running hive-agent binary.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{} // closed once the process exited; err is then set
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startBinary runs the agent with the test's worker and log directories
// and args; it is killed when the test ends.
func startBinary(t *testing.T, logDir string, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(agentBin, append([]string{"--worker-dir", workerDir, "--log-dir", logDir,
		"--port-range", "9700-9799", "--log-format", "text"}, args...)...))
}

// startCmd starts cmd, a hive-agent command line, and kills it when the
// test ends, showing its output when the test failed.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("agent output:\n%s", p.out.String())
		}
	})
	return p
}

// waitLog waits until the agent has logged want. It fails at once when the
// agent exited instead.
func (p *proc) waitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(p.out.String(), want) {
		select {
		case <-p.exited:
			if strings.Contains(p.out.String(), want) {
				return
			}
			t.Fatalf("agent exited (%v) without logging %q; output:\n%s", p.err, want, p.out.String())
		case <-deadline:
			t.Fatalf("agent never logged %q; output:\n%s", want, p.out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// wait waits for the agent to exit by itself and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(60 * time.Second):
		t.Fatalf("agent still running; output:\n%s", p.out.String())
		return -1
	}
}

// stop sends sig and returns the exit error.
func (p *proc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not stop after %v", sig)
		return nil
	}
}

// newHive returns a fresh hive id. When the test ends its workers are
// killed (these tests hand workers to a next agent on purpose), and then
// NoLeftovers checks that none of them survived.
func newHive(t *testing.T) string {
	hive := testenv.HiveID(t)
	testenv.NoLeftovers(t, hive)
	t.Cleanup(func() { testenv.Stop(hive) })
	return hive
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func request(t *testing.T, nc *nats.Conn, subject, body string, v any) {
	t.Helper()
	msg, err := nc.Request(subject, []byte(body), 30*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var r struct {
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
		Error  *wire.Error     `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil || !r.OK {
		t.Fatalf("%s %s: got %s", subject, body, msg.Data)
	}
	if v != nil {
		json.Unmarshal(r.Result, v)
	}
}

func listPIDs(t *testing.T, nc *nats.Conn, hive string) map[string]int {
	t.Helper()
	var res wire.ListResult
	request(t, nc, "hive."+hive+".worker.list", "", &res)
	out := map[string]int{}
	for _, w := range res.Workers {
		out[w.WorkerID] = w.PID
	}
	return out
}

// With no NATS URL the agent starts its own server; a graceful stop leaves
// workers running, and the next agent manages them.
func TestAgent_EmbeddedServerAndGracefulStop(t *testing.T) {
	hive := newHive(t)
	logDir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := startBinary(t, logDir, "--hive-id", hive, "--nats-listen", addr)
	a.waitLog(t, "started an embedded NATS server")
	a.waitLog(t, "serving worker commands")
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	var sp wire.SpawnResult
	request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"survivor","model_id":"m","device":"cpu"}`, &sp)
	nc.Close()

	if err := a.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: exit %v, want 0", err)
	}
	if !testenv.Alive(sp.PID) {
		t.Fatalf("worker %d died with the agent", sp.PID)
	}
	b := startBinary(t, logDir, "--hive-id", hive, "--nats-listen", addr)
	b.waitLog(t, "serving worker commands")
	b.waitLog(t, "found running workers of this hive from an earlier run")
	nc, err = nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := listPIDs(t, nc, hive); got["survivor"] != sp.PID {
		t.Fatalf("after restart: list %v, want survivor with pid %d", got, sp.PID)
	}
	request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"survivor"}`, nil)
	if !testenv.WaitGone(sp.PID, 5*time.Second) {
		t.Errorf("worker %d still running after delete", sp.PID)
	}
}

// SIGKILL of the agent leaves every worker running and fully manageable by
// the next agent: list shows the same pids, get and delete work.
func TestAgent_SurvivesSIGKILL(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	nc := testenv.Connect(t, s)
	logDir := t.TempDir()
	a := startBinary(t, logDir, "--hive-id", hive, "--nats-url", s.ClientURL())
	a.waitLog(t, "serving worker commands")
	want := map[string]int{}
	for _, id := range []string{"a", "b", "forker"} {
		model := "m"
		if id == "forker" {
			model = "m@fork"
		}
		var sp wire.SpawnResult
		request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"`+id+`","model_id":"`+model+`","device":"cpu"}`, &sp)
		want[id] = sp.PID
	}
	forkGroup := testenv.GroupMembers(want["forker"])

	a.stop(t, syscall.SIGKILL)
	for id, pid := range want {
		if !testenv.Alive(pid) {
			t.Fatalf("worker %s (pid %d) died with the agent", id, pid)
		}
	}
	b := startBinary(t, logDir, "--hive-id", hive, "--nats-url", s.ClientURL())
	b.waitLog(t, "serving worker commands")
	got := listPIDs(t, nc, hive)
	if len(got) != len(want) {
		t.Fatalf("after restart: list %v, want %v", got, want)
	}
	for id, pid := range want {
		if got[id] != pid {
			t.Errorf("worker %s: pid %d after restart, want %d", id, got[id], pid)
		}
	}
	var g wire.GetResult
	request(t, nc, "hive."+hive+".worker.get", `{"worker_id":"a","log_lines":5}`, &g)
	if len(g.LogTail) == 0 || g.PID != want["a"] {
		t.Errorf("get after restart: %+v", g)
	}
	for id := range want {
		var del wire.DeleteResult
		request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"`+id+`","grace_ms":2000}`, &del)
		if del.PID != want[id] || del.Signal != "SIGTERM" {
			t.Errorf("delete %s: got %+v", id, del)
		}
	}
	for _, pid := range append(forkGroup, want["a"], want["b"]) {
		if testenv.Alive(pid) {
			t.Errorf("pid %d still running after delete", pid)
		}
	}
}

// A stop while a spawn is waiting lets it finish: the caller gets its reply.
func TestAgent_StopFinishesCommandsInFlight(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	nc := testenv.Connect(t, s)
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL())
	a.waitLog(t, "serving worker commands")
	result, err := nc.SubscribeSync("job.inflight.result")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	nc.Publish("hive."+hive+".worker.spawn", []byte(`{"job_id":"inflight","worker_id":"w","model_id":"m@ready-after=1500ms","device":"cpu","wait":"ready"}`))
	nc.Flush()
	if !testenv.WaitMarked(hive, 1, 20*time.Second) {
		t.Fatal("the worker never started")
	}
	// The worker is started and the spawn is waiting for its health: stop now.
	if err := a.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("stop: exit %v, want 0", err)
	}
	msg, err := result.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no result for the spawn in flight at shutdown: %v", err)
	}
	var r struct {
		OK     bool             `json:"ok"`
		Result wire.SpawnResult `json:"result"`
	}
	if json.Unmarshal(msg.Data, &r); !r.OK || r.Result.Wait != "ready" {
		t.Errorf("result: got %s, want ok after waiting for ready", msg.Data)
	}
	if !testenv.Alive(r.Result.PID) {
		t.Errorf("worker %d did not outlive the agent", r.Result.PID)
	}
}

// The agent waits for a NATS server that is not up yet, saying so, and
// serves once it is.
func TestAgent_WaitsForNATS(t *testing.T) {
	hive := testenv.HiveID(t)
	testenv.NoLeftovers(t, hive)
	port := freePort(t)
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", "nats://127.0.0.1:"+strconv.Itoa(port))
	a.waitLog(t, "NATS not reachable yet; retrying")
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	a.waitLog(t, "serving worker commands")
	nc := testenv.Connect(t, s)
	if got := listPIDs(t, nc, hive); len(got) != 0 {
		t.Errorf("list: got %v", got)
	}
	if err := a.stop(t, syscall.SIGINT); err != nil {
		t.Errorf("stop: %v", err)
	}
}
