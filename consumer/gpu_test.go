package consumer_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	hiveagent "github.com/rbee/hive-agent/agent"
	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/gpu"
	"github.com/rbee/hive-agent/internal/fakesmi"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// recordedGPUs are n GPUs built from the recorded H100 query output.
func recordedGPUs(t *testing.T, n int) []fakesmi.GPU {
	t.Helper()
	b, err := os.ReadFile("../spawner/testdata/nvidia-h100-1gpu/nvidia-smi-query.csv")
	if err != nil {
		t.Fatal(err)
	}
	gs, err := fakesmi.FromQueryCSV(string(b), n)
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

// gpuOpts configure withFakeGPU.
type gpuOpts struct {
	releaseTimeout time.Duration
	smiTimeout     time.Duration
	taintFile      string
}

// withFakeGPU puts the fake nvidia-smi first on the agent's PATH and
// gives the agent its GPU policy as cmd/hive-agent does.
func withFakeGPU(t *testing.T, f *fakesmi.Fake, g gpuOpts) func(*agentOpts) {
	t.Setenv("PATH", f.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func(o *agentOpts) {
		src := gpu.NewSource(gpu.SourceConfig{TTL: 100 * time.Millisecond, Timeout: g.smiTimeout})
		probe := spawner.DeviceProbe{GPUs: src, NvidiaProcDir: filepath.Join(t.TempDir(), "no-driver-dir")}
		o.devices = probe
		o.gpu = &hiveagent.GPUConfig{Source: src, ReleaseTimeout: g.releaseTimeout,
			Poll: 50 * time.Millisecond, Recheck: 100 * time.Millisecond, TaintFile: g.taintFile}
	}
}

// spawnGPU spawns worker id on device with extra JSON fields and returns its pid.
func (a *agent) spawnGPU(t *testing.T, id, device, extra string) int {
	t.Helper()
	var res wire.SpawnResult
	a.must(t, "spawn", fmt.Sprintf(`{"model_id":"test/m","device":%q,"worker_id":%q%s}`, device, id, extra), &res)
	return res.PID
}

// spawnHolding spawns worker id on cuda:0, has the fake nvidia-smi (state
// base plus this app) list its pid holding mib on that GPU, and waits
// until list shows it so; it returns the pid.
func (a *agent) spawnHolding(t *testing.T, f *fakesmi.Fake, base fakesmi.State, id string, mib int64) int {
	t.Helper()
	pid := a.spawnGPU(t, id, "cuda:0", "")
	base.Apps = []fakesmi.App{{PID: pid, GPUUUID: base.GPUs[0].UUID, UsedMiB: mib}}
	f.Write(t, base)
	a.listed(t, id, mib)
	return pid
}

// listed waits until list shows worker id with gpu_memory_mib want.
func (a *agent) listed(t *testing.T, id string, want int64) wire.WorkerInfo {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var res wire.ListResult
		a.must(t, "list", "", &res)
		for _, w := range res.Workers {
			if w.WorkerID == id && w.GPUMemoryMiB != nil && *w.GPUMemoryMiB == want {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("list never showed %s with gpu_memory_mib %d: %+v", id, want, res.Workers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGPU_ListAndStatsFigures(t *testing.T) {
	gs := recordedGPUs(t, 1)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs, ReapDead: true})
	a := startAgent(t, testenv.NATS(t), withFakeGPU(t, f, gpuOpts{}))
	pid := a.spawnGPU(t, "w1", "cuda:0", "")
	a.spawnGPU(t, "c1", "cpu", "")
	f.Write(t, fakesmi.State{GPUs: gs, ReapDead: true, Apps: []fakesmi.App{{PID: pid, GPUUUID: gs[0].UUID, UsedMiB: 30210}}})
	a.listed(t, "w1", 30210)
	var get wire.GetResult
	a.must(t, "get", `{"worker_id":"w1"}`, &get)
	if get.GPUMemoryMiB == nil || *get.GPUMemoryMiB != 30210 {
		t.Errorf("get gpu_memory_mib = %v, want 30210", get.GPUMemoryMiB)
	}
	r := a.req(t, "get", `{"worker_id":"c1"}`)
	if strings.Contains(string(r.Result), "gpu_memory_mib") {
		t.Errorf("a cpu worker carries gpu_memory_mib: %s", r.Result)
	}
	// The stats carry the GPU's live figures.
	msg, err := a.client.Request("$SRV.STATS.hive-agent", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st micro.Stats
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		t.Fatal(err)
	}
	var d wire.StatsData
	if err := json.Unmarshal(st.Endpoints[0].Data, &d); err != nil || len(d.GPUs) != 1 {
		t.Fatalf("stats data %s: %v", st.Endpoints[0].Data, err)
	}
	want := wire.GPUInfo{Device: "cuda:0", Index: 0, UUID: gs[0].UUID, Name: "NVIDIA H100 80GB HBM3",
		MemoryTotalMiB: 81559, MemoryUsedMiB: 30210, MemoryFreeMiB: 81559 - 30210}
	if got := d.GPUs[0]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stats gpus[0] = %+v, want %+v", got, want)
	}
	for _, id := range []string{"w1", "c1"} {
		a.must(t, "delete", `{"worker_id":"`+id+`"}`, nil)
	}
}

func TestGPU_AdmissionByFreeMemory(t *testing.T) {
	gs := recordedGPUs(t, 1)
	gs[0].MemoryUsedMiB = 81559 - 10000 // 10000 MiB free
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs, ReapDead: true})
	a := startAgent(t, testenv.NATS(t), withFakeGPU(t, f, gpuOpts{}))

	r := a.req(t, "spawn", `{"model_id":"test/m","device":"cuda:0","worker_id":"big","min_free_vram_mib":20000}`)
	wantError(t, r, wire.CodeInsufficientVRAM, "")
	t.Logf("refused: %s", r.raw)
	for _, s := range []string{"cuda:0", gs[0].UUID, "10000 MiB free", "asks for 20000 MiB"} {
		if !strings.Contains(r.Error.Message, s) {
			t.Errorf("message %q lacks %q", r.Error.Message, s)
		}
	}
	a.stillServes(t)
	a.spawnGPU(t, "small", "cuda:0", `,"min_free_vram_mib":8000`)

	for _, bad := range []struct{ body, field string }{
		{`{"model_id":"m","device":"cuda:0","min_free_vram_mib":-1}`, "min_free_vram_mib"},
		{`{"model_id":"m","device":"cpu","min_free_vram_mib":100}`, "min_free_vram_mib"},
		{`{"model_id":"m","device":"cuda:0","min_free_vram_mib":"lots"}`, ""},
	} {
		wantError(t, a.req(t, "spawn", bad.body), wire.CodeBadRequest, bad.field)
		a.stillServes(t)
	}
	a.must(t, "delete", `{"worker_id":"small"}`, nil)
}

// Two spawns in a row against one free amount: the second sees what the
// first asked for and does not use yet.
func TestGPU_BackToBackSpawnsCannotShareFreeMemory(t *testing.T) {
	gs := recordedGPUs(t, 1)
	gs[0].MemoryUsedMiB = 81559 - 30000 // 30000 MiB free
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs, ReapDead: true})
	a := startAgent(t, testenv.NATS(t), withFakeGPU(t, f, gpuOpts{}))

	pidA := a.spawnGPU(t, "a", "cuda:0", `,"min_free_vram_mib":20000`)
	r := a.req(t, "spawn", `{"model_id":"test/m","device":"cuda:0","worker_id":"b","min_free_vram_mib":20000}`)
	wantError(t, r, wire.CodeInsufficientVRAM, "")
	t.Logf("second spawn: %s", r.Error.Message)
	if !strings.Contains(r.Error.Message, "20000 MiB are promised") {
		t.Errorf("message %q does not say what is promised", r.Error.Message)
	}
	// Worker a now uses its memory: 10000 free, nothing promised.
	f.Write(t, fakesmi.State{GPUs: gs, ReapDead: true, Apps: []fakesmi.App{{PID: pidA, GPUUUID: gs[0].UUID, UsedMiB: 20000}}})
	a.listed(t, "a", 20000)
	r = a.req(t, "spawn", `{"model_id":"test/m","device":"cuda:0","worker_id":"c","min_free_vram_mib":12000}`)
	wantError(t, r, wire.CodeInsufficientVRAM, "")
	if strings.Contains(r.Error.Message, "promised") || !strings.Contains(r.Error.Message, "10000 MiB free") {
		t.Errorf("message %q: want 10000 free and nothing promised", r.Error.Message)
	}
	a.spawnGPU(t, "d", "cuda:0", `,"min_free_vram_mib":9000`)
	for _, id := range []string{"a", "d"} {
		a.must(t, "delete", `{"worker_id":"`+id+`"}`, nil)
	}
}

func TestGPU_DeleteReleases(t *testing.T) {
	gs := recordedGPUs(t, 1)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs, ReapDead: true})
	a := startAgent(t, testenv.NATS(t), withFakeGPU(t, f, gpuOpts{}))
	events := a.watch(t, "hive."+a.hive+".events.gpu.>")
	a.spawnHolding(t, f, fakesmi.State{GPUs: gs, ReapDead: true}, "w1", 30210)
	var del wire.DeleteResult
	a.lastRaw = string(a.must(t, "delete", `{"worker_id":"w1"}`, &del).Result)
	if del.GPUReleased == nil || !*del.GPUReleased || del.GPUReleaseMS == nil {
		t.Fatalf("delete result: gpu_released %v, gpu_release_ms %v; want true and a time", del.GPUReleased, del.GPUReleaseMS)
	}
	msgs := events.waitFor(t, "gpu.released", events.count(1))
	t.Logf("delete result: %s\nevent: %s", a.lastRaw, msgs[0])
	var ev wire.GPUReleased
	if err := json.Unmarshal(msgs[0], &ev); err != nil {
		t.Fatal(err)
	}
	want := wire.GPUReleased{HiveID: a.hive, Device: "cuda:0", UUID: gs[0].UUID, WorkerID: "w1", FreedMiB: 30210, MS: ev.MS}
	if ev != want {
		t.Errorf("released event %+v, want %+v", ev, want)
	}
	// The exit the delete caused joined the delete's check: one event.
	a.stillServes(t)
	if n := len(events.snapshot()); n != 1 {
		t.Errorf("%d gpu events, want 1: %s", n, joinMsgs(events.snapshot()))
	}
}

// A delete whose worker's pid stays listed on the GPU taints it: spawns
// are refused naming the pid until the agent sees it gone by itself.
func TestGPU_TaintedAfterDeleteThenRecovers(t *testing.T) {
	gs := recordedGPUs(t, 1)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs})
	a := startAgent(t, testenv.NATS(t), withFakeGPU(t, f, gpuOpts{releaseTimeout: time.Second}))
	events := a.watch(t, "hive."+a.hive+".events.gpu.>")
	pid := a.spawnHolding(t, f, fakesmi.State{GPUs: gs}, "w1", 30210)
	var del wire.DeleteResult
	r := a.must(t, "delete", `{"worker_id":"w1"}`, &del)
	if del.GPUReleased == nil || *del.GPUReleased {
		t.Fatalf("delete result %s: want gpu_released false", r.Result)
	}
	msgs := events.waitFor(t, "gpu.tainted", events.count(1))
	t.Logf("delete result: %s\nevent: %s", r.Result, msgs[0])
	var ev wire.GPUTainted
	if err := json.Unmarshal(msgs[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.WorkerID != "w1" || ev.UUID != gs[0].UUID || fmt.Sprint(ev.PIDs) != fmt.Sprint([]int{pid}) || ev.UsedMiB != 30210 {
		t.Errorf("tainted event %s", msgs[0])
	}
	r = a.req(t, "spawn", `{"model_id":"test/m","device":"cuda:0","worker_id":"w2"}`)
	wantError(t, r, wire.CodeDeviceUnavailable, "")
	t.Logf("spawn on the tainted GPU: %s", r.Error.Message)
	if !strings.Contains(r.Error.Message, "tainted") || !strings.Contains(r.Error.Message, fmt.Sprint(pid)) {
		t.Errorf("message %q does not say tainted by pid %d", r.Error.Message, pid)
	}
	a.stillServes(t)
	// The driver lets go: the agent notices by itself.
	f.Write(t, fakesmi.State{GPUs: gs})
	msgs = events.waitFor(t, "gpu.released", events.count(2))
	var rel wire.GPUReleased
	t.Logf("recovered: %s", msgs[1])
	if err := json.Unmarshal(msgs[1], &rel); err != nil || rel.WorkerID != "w1" || rel.FreedMiB != 30210 {
		t.Errorf("released event %s: %v", msgs[1], err)
	}
	a.spawnGPU(t, "w2", "cuda:0", "")
	a.must(t, "delete", `{"worker_id":"w2"}`, nil)
}

// Issue 14 item 5: with the agent's CUDA_VISIBLE_DEVICES=0 on a two-GPU
// host, GPU 1 is refused however it is named, with device_unavailable.
func TestGPU_UUIDHonoursAgentVisibleDevices(t *testing.T) {
	gs := recordedGPUs(t, 2)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs})
	t.Setenv("CUDA_VISIBLE_DEVICES", "0")
	t.Setenv("PATH", f.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	probe := spawner.DeviceProbe{NvidiaSMI: filepath.Join(f.Dir, "nvidia-smi"), NvidiaProcDir: filepath.Join(t.TempDir(), "none")}
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.devices = probe })
	for _, dev := range []string{gs[1].UUID, "cuda:1", "GPU-1"} {
		r := a.req(t, "spawn", `{"model_id":"test/m","device":"`+dev+`"}`)
		wantError(t, r, wire.CodeDeviceUnavailable, "")
		a.stillServes(t)
	}
	a.spawnGPU(t, "w0", gs[0].UUID, "")
	a.must(t, "delete", `{"worker_id":"w0"}`, nil)
}

// Issue 14 item 13: an nvidia-smi that hangs, with a child in its own
// session holding the output pipe, costs a cuda spawn the bound of one run.
func TestGPU_HungNvidiaSMIAnswersWithinBound(t *testing.T) {
	gs := recordedGPUs(t, 1)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs, Hang: fakesmi.HangChild})
	a := startAgent(t, testenv.NATS(t), withFakeGPU(t, f, gpuOpts{smiTimeout: time.Second}))
	// a.req gives up after 30 s; before the fix this hung for the child's
	// life (an hour).
	r := a.req(t, "spawn", `{"model_id":"test/m","device":"cuda:0","min_free_vram_mib":1000}`)
	wantError(t, r, wire.CodeDeviceUnavailable, "")
	t.Logf("hung nvidia-smi: %s", r.Error.Message)
	if !strings.Contains(r.Error.Message, "did not answer") {
		t.Errorf("message %q does not say nvidia-smi did not answer", r.Error.Message)
	}
	if len(f.Held(t)) == 0 {
		t.Fatal("no child held the pipe: the test tests nothing")
	}
	a.stillServes(t)
	a.spawnGPU(t, "c1", "cpu", "")
	a.must(t, "delete", `{"worker_id":"c1"}`, nil)
}

// Issue 14 item 5, second half: an out-of-range cuda:N of a type that pins
// its GPU (a catalog file type) is device_unavailable, not bad_request.
func TestGPU_OutOfRangePinnedTypeIsDeviceUnavailable(t *testing.T) {
	gs := recordedGPUs(t, 2)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs})
	t.Setenv("CUDA_VISIBLE_DEVICES", "0")
	probe := spawner.DeviceProbe{NvidiaSMI: filepath.Join(f.Dir, "nvidia-smi"), NvidiaProcDir: filepath.Join(t.TempDir(), "none")}
	a := startAgent(t, testenv.NATS(t), withCatalog(t, probe))
	for _, dev := range []string{"cuda:1", "cuda:7", gs[1].UUID} {
		r := a.req(t, "spawn", `{"model_id":"test/m","device":"`+dev+`","worker_type":"tw"}`)
		wantError(t, r, wire.CodeDeviceUnavailable, "")
		a.stillServes(t)
	}
}

// A catalog type's vram_mib is the spawn's ask unless min_free_vram_mib
// says otherwise.
func TestGPU_CatalogVRAMAndSpawnOverride(t *testing.T) {
	gs := recordedGPUs(t, 1)
	gs[0].MemoryUsedMiB = 81559 - 10000 // 10000 MiB free
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs, ReapDead: true})
	cat, err := catalog.Parse("vram.yaml", []byte(fmt.Sprintf(`
worker_types:
  big:
    binary: %s
    devices: [cuda]
    args: [--model, "{model_id}", --worker-id, "{worker_id}", --device, "{device}", --port, "{port}", --queen-url, "{queen_url}"]
    vram_mib: 40000
`, filepath.Join(workerDir, "cuda-llm-worker-rbee"))))
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, testenv.NATS(t), withFakeGPU(t, f, gpuOpts{}), func(o *agentOpts) {
		o.config = func(_ *nats.Conn, c *consumer.Config) { c.Catalog = cat }
	})
	r := a.req(t, "spawn", `{"model_id":"test/m","device":"cuda:0","worker_type":"big"}`)
	wantError(t, r, wire.CodeInsufficientVRAM, "")
	if !strings.Contains(r.Error.Message, "asks for 40000 MiB") {
		t.Errorf("message %q does not name the type's vram_mib", r.Error.Message)
	}
	a.spawnGPU(t, "w1", "cuda:0", `,"worker_type":"big","min_free_vram_mib":5000`)
	a.must(t, "delete", `{"worker_id":"w1"}`, nil)
}

// A worker on a GPU that exits by itself (no delete) gets the release
// check too: its gpu.released event, with what it held.
func TestGPU_OwnExitReleases(t *testing.T) {
	gs := recordedGPUs(t, 1)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs, ReapDead: true})
	a := startAgent(t, testenv.NATS(t), withFakeGPU(t, f, gpuOpts{}))
	events := a.watch(t, "hive."+a.hive+".events.gpu.>")
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	var res wire.SpawnResult
	a.must(t, "spawn", `{"model_id":"test/m@crash-after=4s","device":"cuda:0","worker_id":"c1","wait":"exec"}`, &res)
	f.Write(t, fakesmi.State{GPUs: gs, ReapDead: true, Apps: []fakesmi.App{{PID: res.PID, GPUUUID: gs[0].UUID, UsedMiB: 1234}}})
	a.listed(t, "c1", 1234) // seen holding it before it exits
	exited.waitFor(t, "c1's exit", exited.count(1))
	msgs := events.waitFor(t, "gpu.released", events.count(1))
	var ev wire.GPUReleased
	if err := json.Unmarshal(msgs[0], &ev); err != nil {
		t.Fatal(err)
	}
	want := wire.GPUReleased{HiveID: a.hive, Device: "cuda:0", UUID: gs[0].UUID, WorkerID: "c1", FreedMiB: 1234, MS: ev.MS}
	if ev != want {
		t.Errorf("released event %+v, want %+v", ev, want)
	}
	a.stillServes(t)
}

// A taint outlives the agent: the next agent of the hive, reading the
// taint file, refuses spawns on the GPU naming the same pid until the pid
// is gone from it, then publishes released and removes the file.
func TestGPU_TaintOutlivesTheAgent(t *testing.T) {
	gs := recordedGPUs(t, 1)
	f := fakesmi.Install(t, fakesmi.State{GPUs: gs})
	s := testenv.NATS(t)
	hive := testenv.HiveID(t)
	file := filepath.Join(t.TempDir(), "gpu", hive+"-tainted.json")
	opts := gpuOpts{releaseTimeout: time.Second, taintFile: file}
	a := startAgent(t, s, onHive(hive), withFakeGPU(t, f, opts))
	pid := a.spawnHolding(t, f, fakesmi.State{GPUs: gs}, "w1", 30210)
	var del wire.DeleteResult
	a.must(t, "delete", `{"worker_id":"w1"}`, &del)
	if del.GPUReleased == nil || *del.GPUReleased {
		t.Fatalf("delete: want gpu_released false, got %+v", del)
	}
	if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), fmt.Sprint(pid)) {
		t.Fatalf("taint file after the taint: %v %s", err, b)
	}
	a.close()

	b := startAgent(t, s, onHive(hive), withFakeGPU(t, f, opts))
	events := b.watch(t, "hive."+hive+".events.gpu.>")
	r := b.req(t, "spawn", `{"model_id":"test/m","device":"cuda:0","worker_id":"w2"}`)
	wantError(t, r, wire.CodeDeviceUnavailable, "")
	if !strings.Contains(r.Error.Message, "tainted") || !strings.Contains(r.Error.Message, fmt.Sprint(pid)) {
		t.Errorf("spawn on the GPU the earlier run found tainted: %q, want tainted by pid %d", r.Error.Message, pid)
	}
	b.stillServes(t)
	f.Write(t, fakesmi.State{GPUs: gs})
	msgs := events.waitFor(t, "gpu.released", events.count(1))
	var rel wire.GPUReleased
	if err := json.Unmarshal(msgs[0], &rel); err != nil || rel.WorkerID != "w1" || rel.UUID != gs[0].UUID || rel.FreedMiB != 30210 {
		t.Errorf("released event %s: %v", msgs[0], err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, err := os.Stat(file); err == nil && time.Now().Before(deadline); _, err = os.Stat(file) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("taint file %s still there after the release", file)
	}
	b.spawnGPU(t, "w2", "cuda:0", "")
	b.must(t, "delete", `{"worker_id":"w2"}`, nil)
}
