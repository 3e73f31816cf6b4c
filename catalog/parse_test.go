package catalog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParse_FullFile(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got, ok := c.Type("server")
	if !ok {
		t.Fatalf("no type server in %v", c.Names())
	}
	want := Type{
		Name: "server", Description: "a server with every key set", Binary: "/opt/servers/bin/server",
		Args: []string{
			"--model={model_id}", "--port", "{port}", "--name", "{worker_id}", "--gpu", "{device_index}",
			"--queen", "{queen_url}", "--hive={hive_id}", "--device", "{device}", "99", `{"level": 3}`,
		},
		Env:        map[string]string{"SERVER_MODEL": "{model_id}", "SERVER_THREADS": "8"},
		Devices:    []string{"cuda", "cpu"},
		HealthPath: "/healthz", ReadyStatus: 204, LoadingStatus: []int{503, 425},
		Wait: "ready", ReadyTimeout: 15 * time.Minute, StallTimeout: 90 * time.Second,
		Restart: "on-failure", MaxRestarts: 7, PinGPU: false, Source: "testdata/good/full.yaml:8",
	}
	if diff := typeDiff(got, want); diff != "" {
		t.Errorf("server: %s", diff)
	}
	min, _ := c.Type("minimal")
	wantMin := Type{
		Name: "minimal", Binary: "minimal-server", Devices: []string{"metal"},
		HealthPath: "/health", ReadyStatus: 200, LoadingStatus: []int{503},
		Restart: "no", MaxRestarts: 3, PinGPU: true, Source: "testdata/good/full.yaml:38",
	}
	if diff := typeDiff(min, wantMin); diff != "" {
		t.Errorf("minimal (defaults): %s", diff)
	}
	if got, want := c.Names(), []string{"cpu-llm", "cuda-llm", "metal-llm", "minimal", "server"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	for kind, want := range map[string]string{"cpu": "cpu-llm", "cuda": "cuda-llm", "metal": "minimal"} {
		if got, err := c.ForDevice(kind); err != nil || got.Name != want {
			t.Errorf("ForDevice(%s) = %q, %v; want %q", kind, got.Name, err, want)
		}
	}
}

// typeDiff names the fields where got and want differ.
func typeDiff(got, want Type) string {
	var d []string
	check := func(field string, equal bool) {
		if !equal {
			d = append(d, field)
		}
	}
	check("Name", got.Name == want.Name)
	check("Description", got.Description == want.Description)
	check("Binary", got.Binary == want.Binary)
	check("Args", slices.Equal(got.Args, want.Args))
	check("Env", len(got.Env) == len(want.Env) && envSubset(got.Env, want.Env))
	check("Devices", slices.Equal(got.Devices, want.Devices))
	check("HealthPath", got.HealthPath == want.HealthPath)
	check("ReadyStatus", got.ReadyStatus == want.ReadyStatus)
	check("LoadingStatus", slices.Equal(got.LoadingStatus, want.LoadingStatus))
	check("Wait", got.Wait == want.Wait)
	check("ReadyTimeout", got.ReadyTimeout == want.ReadyTimeout)
	check("StallTimeout", got.StallTimeout == want.StallTimeout)
	check("Restart", got.Restart == want.Restart)
	check("MaxRestarts", got.MaxRestarts == want.MaxRestarts)
	check("PinGPU", got.PinGPU == want.PinGPU)
	check("Builtin", got.Builtin == want.Builtin)
	check("Source", got.Source == want.Source)
	if len(d) == 0 {
		return ""
	}
	return "fields differ: " + strings.Join(d, ", ") + "\n got  " + strings.ReplaceAll(fmt.Sprintf("%+v", got), "\n", " ") + "\n want " + fmt.Sprintf("%+v", want)
}

func envSubset(a, b map[string]string) bool {
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestParse_BadFiles(t *testing.T) {
	type want struct {
		line, col int
		field     string
		msg       string
	}
	tests := []struct {
		file string
		want []want
	}{
		{"syntax.yaml", []want{{5, 5, "", "',' or ']' must be specified"}}},
		{"flow_braces.yaml", []want{{4, 42, "", `quote arguments that contain a {placeholder}, e.g. "--port={port}"`}}},
		{"tab.yaml", []want{{3, 1, "", "found character '\t' that cannot start any token"}}},
		{"duplicate_type.yaml", []want{{5, 3, "worker_types.llama", `mapping key "llama" already defined at [2:3]`}}},
		{"duplicate_and_more.yaml", []want{
			{2, 3, "worker_types.llama.devices", "missing: list the device kinds"},
			{4, 5, "worker_types.llama.binary", `mapping key "binary" already defined at [3:5]`},
			{5, 5, "worker_types.llama.helth_path", "unknown key"},
			{6, 3, "worker_types.llama", `mapping key "llama" already defined at [2:3]`},
			{9, 1, "worker_typo", "unknown key"},
		}},
		{"unknown_key.yaml", []want{{5, 5, "worker_types.llama.helth_path", "unknown key; known keys: args, binary,"}}},
		{"unknown_top_key.yaml", []want{{1, 1, "worker_type", "unknown key; known top-level keys: default_types, worker_types"}}},
		{"unknown_placeholder.yaml", []want{
			{8, 9, "worker_types.llama.args[2]", "unknown placeholder {prot}; known: {worker_id}, {model_id}, {port},"},
			{10, 24, "worker_types.llama.env.LLAMA_ARG_ALIAS", "unknown placeholder {modle_id}"},
		}},
		{"missing_binary.yaml", []want{{2, 3, "worker_types.llama.binary", "missing: every worker type needs a binary"}}},
		{"relative_binary.yaml", []want{{3, 13, "worker_types.llama.binary", `"bin/llama-server": give a file name (looked up in --worker-dir, then PATH) or an absolute path`}}},
		{"bad_duration.yaml", []want{
			{5, 20, "worker_types.llama.ready_timeout", `bad duration "10 minutes"`},
			{6, 20, "worker_types.llama.stall_timeout", `bad duration "600"`},
		}},
		{"bad_restart.yaml", []want{
			{5, 14, "worker_types.llama.restart", `"always": want "no" or "on-failure"`},
			{6, 19, "worker_types.llama.max_restarts", `"-1": want a whole number`},
		}},
		{"unknown_device.yaml", []want{
			{4, 20, "worker_types.llama.devices[1]", `unknown device kind "rocm"; want cpu, cuda, metal`},
			{4, 26, "worker_types.llama.devices[2]", "cpu is listed twice"},
		}},
		{"bad_defaults.yaml", []want{
			{6, 3, "default_types.gpu", "unknown device kind; want cpu, cuda, metal"},
			{7, 9, "default_types.cuda", `unknown worker type "nope"; known types: cpu-llm, cuda-llm, metal-llm, vllm`},
			{8, 8, "default_types.cpu", "worker type vllm does not accept cpu devices (it runs on cuda)"},
		}},
		{"marker_env.yaml", []want{
			{6, 7, "worker_types.llama.env.HIVE_AGENT_WORKER_ID", "HIVE_AGENT_* variables are the agent's worker marker"},
			{7, 7, "worker_types.llama.env.1BAD", `"1BAD" is not a valid variable name`},
		}},
		{"wrong_shapes.yaml", []want{
			{4, 14, "worker_types.llama.devices", "want a list, found the value cpu"},
			{5, 11, "worker_types.llama.args", "want a list, found the value --port {port}"},
			{6, 19, "worker_types.llama.ready_status", `"2000": want an HTTP status, 100-599`},
			{7, 11, "worker_types.llama.wait", `"forever": want exec, alive or ready`},
			{8, 14, "worker_types.llama.pin_gpu", "want true or false, found the value yes"},
			{9, 18, "worker_types.llama.health_path", `"health": want a path starting with /`},
		}},
		{"override_drops_kind.yaml", []want{{2, 3, "worker_types.cuda-llm.devices", "cuda-llm is the default type for cuda devices but does not accept cuda"}}},
		{"empty.yaml", []want{{1, 1, "", "empty file: want a worker_types: mapping"}}},
		{"bad_alias.yaml", []want{{3, 9, "worker_types.llama", "alias *missing names no anchor"}}},
		{"bad_name.yaml", []want{{2, 3, "worker_types.llama.cpp", `type name "llama.cpp" may only contain A-Z a-z 0-9 _ -`}}},
		{"two_docs.yaml", []want{{5, 1, "", "a catalog file holds one YAML document"}}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tt.file)
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %v types, want an error", path, c.Names())
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %T %v, want *catalog.Error", err, err)
			}
			if len(cerr.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(cerr.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				p := cerr.Problems[i]
				if p.Line != w.line || p.Column != w.col || p.Field != w.field || !strings.Contains(p.Msg, w.msg) {
					t.Errorf("problem %d = %d:%d %q %q\nwant       %d:%d %q containing %q", i,
						p.Line, p.Column, p.Field, p.Msg, w.line, w.col, w.field, w.msg)
				}
				// The operator reads the message: file, line, column and field are in it.
				prefix := path + ":" + strconv.Itoa(w.line) + ":" + strconv.Itoa(w.col) + ": "
				if w.field != "" {
					prefix += w.field + ": "
				}
				if !strings.Contains(err.Error(), prefix) {
					t.Errorf("message %q lacks %q", err.Error(), prefix)
				}
			}
		})
	}
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no test case", f)
		}
	}
}

func TestParse_OverrideKeepsBuiltinKeys(t *testing.T) {
	c, err := Parse("override.yaml", []byte("worker_types:\n  cpu-llm:\n    restart: on-failure\n    env: {RUST_LOG: info}\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got, _ := c.Type("cpu-llm")
	want, _ := Builtin().Type("cpu-llm")
	want.Restart, want.Env, want.Builtin, want.Source = "on-failure", map[string]string{"RUST_LOG": "info"}, false, "override.yaml:2"
	if diff := typeDiff(got, want); diff != "" {
		t.Error(diff)
	}
}

func TestParse_ExampleCatalogs(t *testing.T) {
	files, err := filepath.Glob("../examples/catalog/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("example catalogs: %v %v", files, err)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("Load(%s): %v", f, err)
		}
	}
	c, _ := Load("../examples/catalog/vllm.yaml")
	vllm, _ := c.Type("vllm")
	// vLLM's /health answers 503 for a dead engine: it must not count as loading.
	if len(vllm.LoadingStatus) != 0 || !vllm.PinGPU || vllm.Args[0] != "serve" {
		t.Errorf("vllm = %+v", vllm)
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want os.ErrNotExist", err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one", c, err)
		}
		if c != nil {
			for _, k := range Kinds {
				if _, err := c.ForDevice(k); err != nil {
					t.Fatalf("valid catalog without a %s type: %v", k, err)
				}
			}
		}
	})
}
