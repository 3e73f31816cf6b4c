package catalog

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) *Catalog {
	t.Helper()
	c, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func mustType(t *testing.T, c *Catalog, name string) Type {
	t.Helper()
	typ, ok := c.Type(name)
	if !ok {
		t.Fatalf("no type %s in %v", name, c.Names())
	}
	return typ
}

func TestRender_Placeholders(t *testing.T) {
	c := mustParse(t, `
worker_types:
  srv:
    binary: srv
    devices: [cpu, cuda]
    pin_gpu: false
    args:
      - --model
      - "{model_id}"
      - --port={port}
      - "{worker_id}:{hive_id}"
      - --queen-url
      - "{queen_url}"
      - --device={device}
      - '{"tp": 1, "id": "{worker_id}"}'
    env:
      SRV_MODEL: "{model_id}"
      SRV_INDEX: "gpu{device_index}"
      SRV_PLAIN: plain value
`)
	srv := mustType(t, c, "srv")
	tests := []struct {
		name     string
		p        Params
		wantArgs []string
		wantEnv  []string
	}{
		{
			"plain values",
			Params{WorkerID: "w1", ModelID: "meta-llama/Llama-3-8b", Port: 9100, Device: "cuda:1", DeviceIndex: 1, QueenURL: "http://q:7833", HiveID: "h1"},
			[]string{"--model", "meta-llama/Llama-3-8b", "--port=9100", "w1:h1", "--queen-url", "http://q:7833", "--device=cuda:1", `{"tp": 1, "id": "w1"}`},
			[]string{"SRV_INDEX=gpu1", "SRV_MODEL=meta-llama/Llama-3-8b", "SRV_PLAIN=plain value"},
		},
		{
			// A model id with spaces, quotes, a shell metacharacter and a
			// leading '-' is still exactly one argument, unchanged.
			"values stay one argument",
			Params{WorkerID: "w-2", ModelID: `-my model "v2"; rm -rf /`, Port: 65535, Device: "CPU-3", DeviceIndex: 3, QueenURL: "http://a b", HiveID: "h"},
			[]string{"--model", `-my model "v2"; rm -rf /`, "--port=65535", "w-2:h", "--queen-url", "http://a b", "--device=CPU-3", `{"tp": 1, "id": "w-2"}`},
			[]string{"SRV_INDEX=gpu3", `SRV_MODEL=-my model "v2"; rm -rf /`, "SRV_PLAIN=plain value"},
		},
		{
			// A value that looks like a placeholder is not expanded again.
			"no second expansion",
			Params{WorkerID: "{port}", ModelID: "{worker_id}", Port: 1024, Device: "cpu", DeviceIndex: -1, QueenURL: "", HiveID: "{hive_id}"},
			[]string{"--model", "{worker_id}", "--port=1024", "{port}:{hive_id}", "--queen-url", "", "--device=cpu", `{"tp": 1, "id": "{port}"}`},
			nil, // SRV_INDEX needs an index: see TestRender_Errors
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, env, err := srv.Render(tt.p)
			if tt.wantEnv == nil {
				if !errors.Is(err, ErrNoDeviceIndex) {
					t.Fatalf("Render = %v, want ErrNoDeviceIndex", err)
				}
				// Without the env entry the arguments render fine.
				noEnv := srv
				noEnv.Env = nil
				args, env, err = noEnv.Render(tt.p)
			}
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if !slices.Equal(args, tt.wantArgs) {
				t.Errorf("args\n got  %q\n want %q", args, tt.wantArgs)
			}
			if tt.wantEnv != nil && !slices.Equal(env, tt.wantEnv) {
				t.Errorf("env\n got  %q\n want %q", env, tt.wantEnv)
			}
		})
	}
}

// rbeeArgvToday is the argument vector spawner.Start builds for every
// worker (spawner/spawner.go, and the log line in README.md).
func rbeeArgvToday(workerID, model, device, port, queen string) []string {
	return []string{"--worker-id", workerID, "--model", model, "--device", device, "--port", port, "--queen-url", queen}
}

func TestBuiltin_RendersTodaysRbeeArgv(t *testing.T) {
	c := Builtin()
	if got, want := c.Names(), []string{"cpu-llm", "cuda-llm", "metal-llm"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	tests := []struct {
		device, kind, typ, binary string
		index                     int
	}{
		{"cpu", "cpu", "cpu-llm", "cpu-llm-worker-rbee", -1},
		{"CPU-2", "cpu", "cpu-llm", "cpu-llm-worker-rbee", 2},
		{"cuda:1", "cuda", "cuda-llm", "cuda-llm-worker-rbee", 1},
		{"GPU-0", "cuda", "cuda-llm", "cuda-llm-worker-rbee", 0},
		{"metal", "metal", "metal-llm", "metal-llm-worker-rbee", -1},
	}
	for _, tt := range tests {
		t.Run(tt.device, func(t *testing.T) {
			typ, err := c.ForDevice(tt.kind)
			if err != nil || typ.Name != tt.typ || typ.Binary != tt.binary || !typ.Builtin {
				t.Fatalf("ForDevice(%s) = %+v, %v", tt.kind, typ, err)
			}
			args, env, err := typ.Render(Params{
				WorkerID: "w1", ModelID: "meta-llama/Llama-3-8b", Port: 9100, Device: tt.device,
				DeviceIndex: tt.index, QueenURL: "http://localhost:7833", HiveID: "h1",
			})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			want := rbeeArgvToday("w1", "meta-llama/Llama-3-8b", tt.device, "9100", "http://localhost:7833")
			if !slices.Equal(args, want) {
				t.Errorf("args\n got  %q\n want %q", args, want)
			}
			// Today's workers get no extra environment: rbee picks the GPU from --device.
			if len(env) != 0 {
				t.Errorf("env = %q, want none", env)
			}
		})
	}
}

// fixtureUUID is the GPU UUID of the recorded H100, read from its `nvidia-smi -L`.
func fixtureUUID(t *testing.T) string {
	t.Helper()
	out, err := os.ReadFile("testdata/nvidia-h100-1gpu/nvidia-smi-L.txt")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^GPU 0: .*\(UUID: (GPU-[^)]+)\)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no UUID in %q", out)
	}
	return m[1]
}

func TestRender_CUDAVisibleDevices(t *testing.T) {
	uuid := fixtureUUID(t)
	if !IsGPUUUID(uuid) {
		t.Fatalf("IsGPUUUID(%q) = false for the fixture's UUID", uuid)
	}
	c := mustParse(t, `
worker_types:
  pinned: {binary: srv, devices: [cpu, cuda], args: ["--port={port}"]}
  unpinned: {binary: srv, devices: [cuda], pin_gpu: false}
  own: {binary: srv, devices: [cuda], env: {CUDA_VISIBLE_DEVICES: "{device_index}", OTHER: x}}
`)
	tests := []struct {
		name, typ, device string
		index             int
		agentVisible      string
		want              string // CUDA_VISIBLE_DEVICES, "" for unset
	}{
		{"index", "pinned", "cuda:0", 0, "", "0"},
		{"GPU-N is an index too", "pinned", "GPU-0", 0, "", "0"},
		{"uuid as nvidia-smi -L prints it", "pinned", uuid, 0, "", uuid},
		{"uuid whose index the caller does not know", "pinned", uuid, -1, "", uuid},
		{"index within the agent's own list", "pinned", "cuda:1", 1, "2,3", "3"},
		{"agent's list of uuids", "pinned", "cuda:0", 0, uuid + ",GPU-1", uuid},
		{"cpu device is not pinned", "pinned", "cpu", -1, "", ""},
		{"pin_gpu false", "unpinned", "cuda:0", 0, "", ""},
		{"type's own value wins", "own", "cuda:0", 0, "", "0"},
		{"builtin rbee type", "cuda-llm", "cuda:0", 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, env, err := mustType(t, c, tt.typ).Render(Params{
				WorkerID: "w1", ModelID: "m", Port: 9100, Device: tt.device, DeviceIndex: tt.index,
				QueenURL: "http://q", HiveID: "h1", AgentVisibleDevices: tt.agentVisible,
			})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			var got []string
			for _, kv := range env {
				if v, ok := strings.CutPrefix(kv, CUDAVisibleDevices+"="); ok {
					got = append(got, v)
				}
			}
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("env %q sets %s, want it unset", env, CUDAVisibleDevices)
			case tt.want != "" && (len(got) != 1 || got[0] != tt.want):
				t.Errorf("env %q: want exactly %s=%s", env, CUDAVisibleDevices, tt.want)
			}
		})
	}
}

func TestRender_Errors(t *testing.T) {
	c := mustParse(t, `
worker_types:
  idx: {binary: srv, devices: [cpu, cuda], args: [--gpu, "{device_index}"]}
  gpu: {binary: srv, devices: [cuda]}
`)
	p := func(device string, index, port int, visible string) Params {
		return Params{WorkerID: "w", ModelID: "m", Port: port, Device: device, DeviceIndex: index, AgentVisibleDevices: visible}
	}
	tests := []struct {
		name, typ string
		p         Params
		is        error
		msg       string
	}{
		{"device_index on cpu", "idx", p("cpu", -1, 9100, ""), ErrNoDeviceIndex, "args[1]"},
		{"device not accepted", "gpu", p("metal", -1, 9100, ""), ErrDeviceNotAccepted, "runs on cuda, not metal"},
		{"unknown device", "gpu", p("rocm:0", 0, 9100, ""), nil, `device "rocm:0"`},
		{"uuid in capitals is not nvidia-smi's form", "gpu", p("GPU-F6A4B594-4260-B95B-6164-2BBEDF0B43A9", -1, 9100, ""), nil, "want cpu, CPU-N"},
		{"port not chosen yet", "gpu", p("cuda:0", 0, 0, ""), nil, "port 0"},
		{"index outside the agent's list", "gpu", p("cuda:2", 2, 9100, "0,1"), nil, `CUDA_VISIBLE_DEVICES="0,1" shows 2 GPU(s)`},
		{"cuda index unknown", "gpu", p("cuda:0", -1, 9100, ""), ErrNoDeviceIndex, "pin cuda:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, env, err := mustType(t, c, tt.typ).Render(tt.p)
			if err == nil {
				t.Fatalf("Render = %q %q, want an error", args, env)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
		})
	}
}

func ExampleType_Render() {
	c, err := Load("../examples/catalog/llama-server.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	typ, err := c.Lookup("llama-cuda", "cuda")
	if err != nil {
		fmt.Println(err)
		return
	}
	argv, env, err := typ.Render(Params{
		WorkerID: "w1", ModelID: "/models/Llama-3.2-3B-Instruct-Q4_K_M.gguf", Port: 9100,
		Device: "cuda:1", DeviceIndex: 1, QueenURL: "http://localhost:7833", HiveID: "h1",
	})
	fmt.Println(typ.Binary, strings.Join(argv, " "))
	fmt.Println(env, err)
	// Output:
	// llama-server --model /models/Llama-3.2-3B-Instruct-Q4_K_M.gguf --alias w1 --host 127.0.0.1 --port=9100 --n-gpu-layers 999 --ctx-size 8192
	// [CUDA_VISIBLE_DEVICES=1] <nil>
}
