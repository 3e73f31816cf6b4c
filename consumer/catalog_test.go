package consumer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/fakesmi"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// testCatalog runs the test worker with an argument layout of its own, as
// an operator's catalog runs llama-server or vLLM.
func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	bin := filepath.Join(workerDir, "cpu-llm-worker-rbee")
	text := fmt.Sprintf(`
worker_types:
  tw:
    binary: %s
    devices: [cpu, cuda]
    args: ["--model={model_id}", --worker-id, "{worker_id}", --device, "{device}", "--port={port}",
           --queen-url, "{queen_url}", --label, "-{worker_id} {model_id}", --health-path, /v1/ready]
    env: {TW_WHERE: "{worker_id} on {device}"}
    health_path: /v1/ready
    wait: ready
  tw-stall:
    binary: %[1]s
    devices: [cpu]
    args: [--model, "{model_id}", --worker-id, "{worker_id}", --device, "{device}", --port, "{port}", --queen-url, "{queen_url}"]
    loading_status: []
    stall_timeout: 2s
    ready_timeout: 2m
    wait: ready
`, bin)
	c, err := catalog.Parse("test-catalog.yaml", []byte(text))
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	return c
}

func withCatalog(t *testing.T, devices spawner.DeviceProbe) func(*agentOpts) {
	cat := testCatalog(t)
	return func(o *agentOpts) {
		o.devices = devices
		o.config = func(_ *nats.Conn, c *consumer.Config) {
			c.Catalog = cat
			c.Defaults.ProgressInterval = 200 * time.Millisecond
		}
	}
}

// A catalog type is started with its own arguments (each template one
// argument, whatever spaces or dashes the values hold), its environment
// after the inherited one and before the marker, waited for on its health
// path, and reported under its type name.
func TestConsumer_CatalogTypeSpawned(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), withCatalog(t, spawner.DeviceProbe{}))
	started := a.watch(t, "hive."+a.hive+".events.worker.started")
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"w1","model_id":"org/my model","device":"cpu","worker_type":"tw"}`, &sp)
	if sp.WorkerType != "tw" || sp.Wait != "ready" || sp.BinaryPath != filepath.Join(workerDir, "cpu-llm-worker-rbee") {
		t.Errorf("result %+v: want type tw, the type's wait (ready) and its binary", sp)
	}
	want := []string{sp.BinaryPath, "--model=org/my model", "--worker-id", "w1", "--device", "cpu",
		fmt.Sprintf("--port=%d", sp.Port), "--queen-url", "http://localhost:7833", "--label", "-w1 org/my model",
		"--health-path", "/v1/ready"}
	if got := testenv.Cmdline(sp.PID); !slices.Equal(got, want) {
		t.Errorf("cmdline\n%q\nwant\n%q", got, want)
	}
	env := testenv.Environ(sp.PID)
	if env["TW_WHERE"] != "w1 on cpu" || env["HIVE_AGENT_WORKER_TYPE"] != "tw" || env["HIVE_AGENT_HEALTH_PATH"] != "/v1/ready" {
		t.Errorf("environment: TW_WHERE=%q type=%q health=%q", env["TW_WHERE"], env["HIVE_AGENT_WORKER_TYPE"], env["HIVE_AGENT_HEALTH_PATH"])
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", sp.PID))
	if err != nil {
		t.Fatal(err)
	}
	order := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	iType, iMarker := slices.Index(order, "TW_WHERE=w1 on cpu"), slices.IndexFunc(order, func(s string) bool { return strings.HasPrefix(s, "HIVE_AGENT_") })
	if iType < 0 || iMarker < iType || !strings.HasPrefix(order[len(order)-1], "HIVE_AGENT_") {
		t.Errorf("environment order: the type's variables must follow the inherited ones and precede the marker: %q", order)
	}
	var ev wire.StartedEvent
	msgs := started.waitFor(t, "started event", started.count(1))
	if err := json.Unmarshal(msgs[0], &ev); err != nil || ev.WorkerType != "tw" {
		t.Errorf("started event %s: want worker_type tw", msgs[0])
	}
	var got wire.GetResult
	a.must(t, "get", `{"worker_id":"w1"}`, &got)
	if got.WorkerType != "tw" {
		t.Errorf("get: worker_type %q, want tw", got.WorkerType)
	}
	a.must(t, "delete", `{"worker_id":"w1"}`, nil)
}

// The type's GPU pinning, against a fake nvidia-smi showing two H100s
// built from the recorded one, with the agent's CUDA_VISIBLE_DEVICES=1: a
// GPU-<uuid> device pins that UUID, cuda:N the agent's Nth visible entry
// (here host GPU 1), and the hidden GPU 0 is refused however it is named.
func TestConsumer_CatalogPinsGPU(t *testing.T) {
	gs := recordedGPUs(t, 2)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs})
	t.Setenv("CUDA_VISIBLE_DEVICES", "1")
	probe := spawner.DeviceProbe{GOOS: "linux", NvidiaProcDir: filepath.Join(t.TempDir(), "none"), NvidiaSMI: filepath.Join(f.Dir, "nvidia-smi")}
	a := startAgent(t, testenv.NATS(t), withCatalog(t, probe))
	for _, c := range []struct{ device, want string }{{gs[1].UUID, gs[1].UUID}, {"cuda:0", "1"}} {
		var sp wire.SpawnResult
		a.must(t, "spawn", `{"worker_id":"g","model_id":"m","device":"`+c.device+`","worker_type":"tw","wait":"exec"}`, &sp)
		if got := testenv.Environ(sp.PID)["CUDA_VISIBLE_DEVICES"]; got != c.want {
			t.Errorf("%s: worker's CUDA_VISIBLE_DEVICES=%q, want %q", c.device, got, c.want)
		}
		a.must(t, "delete", `{"worker_id":"g"}`, nil)
	}
	for _, dev := range []string{gs[0].UUID, "GPU-00000000-4260-b95b-6164-2bbedf0b43a9", "cuda:1"} {
		r := a.req(t, "spawn", `{"model_id":"m","device":"`+dev+`","worker_type":"tw"}`)
		wantError(t, r, wire.CodeDeviceUnavailable, "")
		a.stillServes(t)
	}
}

// wait: ready with a stall timeout: a worker that shows no progress fails
// with not_ready at the stall timeout; one that keeps logging is waited for
// past it, narrating worker_loading with its last log line.
func TestConsumer_CatalogStallAndProgress(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), withCatalog(t, spawner.DeviceProbe{}))
	r := a.req(t, "spawn", `{"worker_id":"stuck","model_id":"m@no-health","device":"cpu","worker_type":"tw-stall"}`)
	wantError(t, r, wire.CodeNotReady, "")
	if !strings.Contains(r.Error.Message, "made no progress for 2s") {
		t.Errorf("not_ready message %q does not name the stall", r.Error.Message)
	}
	a.must(t, "delete", `{"worker_id":"stuck"}`, nil)

	narr := a.watch(t, "job.j-slow.narration")
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"job_id":"j-slow","worker_id":"slow","model_id":"m@ready-after=5s,log-every=100ms","device":"cpu","worker_type":"tw-stall"}`, &sp)
	evs := events(t, narr.waitFor(t, "end of narration", hasEnd(t)))
	var loading []wire.Event
	for _, e := range evs {
		if e.Action == "worker_loading" {
			loading = append(loading, e)
		}
	}
	if len(loading) < 2 {
		t.Fatalf("got %d worker_loading events, want several: %v", len(loading), actions(evs))
	}
	// Each names the time waited; they quote the worker's last log line,
	// its progress (the last one may come just as the worker logs that it
	// is ready).
	withStep := 0
	for _, e := range loading {
		if !strings.Contains(e.Human, "still loading after") || !strings.Contains(e.Human, "Last log line: ") {
			t.Errorf("worker_loading %q: want the time waited and the worker's last log line", e.Human)
		}
		if strings.Contains(e.Human, "loading: step") {
			withStep++
		}
	}
	if withStep == 0 {
		t.Errorf("no worker_loading of %d quotes the worker's progress (\"loading: step\")", len(loading))
	}
	i, j := slices.Index(actions(evs), "worker_waiting_ready"), slices.Index(actions(evs), "worker_ready")
	if i < 0 || j < i {
		t.Errorf("narration %v: want worker_loading between worker_waiting_ready and worker_ready", actions(evs))
	}
	a.must(t, "delete", `{"worker_id":"slow"}`, nil)
}

// A failing worker under restart: on-failure is started again with the
// same id, model, device and port, up to max_restarts, each exit and start
// published and narrated on the spawning job; a delete during the backoff
// ends it.
func TestConsumer_RestartOnFailure(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.restartBackoff = 50 * time.Millisecond })
	started := a.watch(t, "hive."+a.hive+".events.worker.started")
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	narr := a.watch(t, "job.j-flaky.narration")
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"job_id":"j-flaky","worker_id":"flaky","model_id":"m@crash-after=200ms","device":"cpu","wait":"exec","restart":"on-failure","max_restarts":2}`, &sp)
	exits := exited.waitFor(t, "three exits", exited.count(3))
	starts := started.waitFor(t, "three starts", started.count(3))
	for i, raw := range starts {
		var ev wire.StartedEvent
		if err := json.Unmarshal(raw, &ev); err != nil || ev.Restart != i || ev.WorkerID != "flaky" || ev.Port != sp.Port || ev.ModelID != "m@crash-after=200ms" {
			t.Errorf("start %d: %s; want restart %d on port %d", i, raw, i, sp.Port)
		}
	}
	for i, raw := range exits {
		var ev wire.ExitedEvent
		want := (i + 1) % 3 // restarts 1, 2, then none
		if err := json.Unmarshal(raw, &ev); err != nil || ev.Restart != want || ev.ExitCode == nil || *ev.ExitCode != 3 {
			t.Errorf("exit %d: %s; want restart %d", i, raw, want)
		}
	}
	evs := events(t, narr.waitFor(t, "narration of the last exit", func(msgs [][]byte) bool {
		return strings.Contains(joinMsgs(msgs), "Not restarting it")
	}))
	var got []string
	for _, e := range evs {
		switch e.Action {
		case "worker_process_started", "worker_exited", "worker_restarted":
			got = append(got, e.Action)
		}
	}
	want := []string{"worker_process_started", "worker_exited", "worker_restarted", "worker_exited", "worker_restarted", "worker_exited"}
	if !slices.Equal(got, want) {
		t.Errorf("narration %v, want %v", got, want)
	}
	r := a.req(t, "delete", `{"worker_id":"flaky"}`)
	wantError(t, r, wire.CodeNotFound, "")

	// A delete while the restart waits for its backoff ends the restarts.
	b := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.restartBackoff = 50 * time.Second })
	bExited := b.watch(t, "hive."+b.hive+".events.worker.exited")
	bStarted := b.watch(t, "hive."+b.hive+".events.worker.started")
	b.must(t, "spawn", `{"worker_id":"w","model_id":"m@crash","device":"cpu","wait":"exec","restart":"on-failure"}`, nil)
	bExited.waitFor(t, "exit", bExited.count(1))
	var del wire.DeleteResult
	b.must(t, "delete", `{"worker_id":"w"}`, &del)
	if !del.RestartCancelled {
		t.Errorf("delete during backoff: %+v, want restart_cancelled", del)
	}
	wantError(t, b.req(t, "delete", `{"worker_id":"w"}`), wire.CodeNotFound, "")
	if n := len(bStarted.snapshot()); n != 1 {
		t.Errorf("got %d started events, want 1 (no restart after the delete)", n)
	}
}
