package commands_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/spawner"
)

const testCatalog = `
worker_types:
  llama-cuda:
    binary: llama-server
    devices: [cuda]
    args: [--model, "{model_id}", "--port={port}"]
  idx:
    binary: /opt/idx-server
    devices: [cpu, cuda]
    pin_gpu: false
    args: ["--gpu={device_index}"]
    wait: ready
    ready_timeout: 10m
`

func mustCatalog(t *testing.T, text string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	return c
}

// A type the catalog lacks, or one that does not run on the device, is
// refused before the device is probed or a binary looked up (the fake
// fails the test on any such call).
func TestSpawn_ExecuteCatalogRefusals(t *testing.T) {
	cat := mustCatalog(t, testCatalog)
	tests := []struct {
		name, body, code, field string
		want                    []string
	}{
		{"unknown type", `{"model_id":"m","device":"cpu","worker_type":"vllm"}`, commands.CodeBadRequest, "worker_type",
			[]string{`"vllm"`, "cpu-llm, cuda-llm, idx, llama-cuda, metal-llm"}},
		{"type not for cpu", `{"model_id":"m","device":"cpu","worker_type":"llama-cuda"}`, commands.CodeDeviceUnavailable, "",
			[]string{"llama-cuda runs on cuda, not cpu"}},
		{"builtin type not for cuda", `{"model_id":"m","device":"cuda:0","worker_type":"cpu-llm"}`, commands.CodeDeviceUnavailable, "",
			[]string{"cpu-llm runs on cpu, not cuda"}},
		{"device_index on cpu", `{"model_id":"m","device":"cpu","worker_type":"idx"}`, commands.CodeBadRequest, "worker_type",
			[]string{"cpu names no index"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n narration
			cmd := mustDecode(t, commands.KindSpawn, tt.body)
			// The device is checked before the templates (a GPU the agent
			// cannot see is device_unavailable, not a template error).
			sp := &fakeSpawner{t: t, CheckDeviceFunc: func(spawner.Device) error { return nil }}
			_, err := cmd.Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator(), Defaults: defaults, Catalog: cat})
			checkCode(t, err, tt.code)
			e := commands.ToError(err)
			if e.Field != tt.field {
				t.Errorf("field %q, want %q", e.Field, tt.field)
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q does not contain %q", e.Message, w)
				}
			}
		})
	}
}

// A catalog type reaches the spawner as its binary, name, health settings
// and rendered command.
func TestSpawn_ExecuteCatalogType(t *testing.T) {
	cat := mustCatalog(t, testCatalog)
	var spec spawner.Spec
	var resolved string
	sp := &fakeSpawner{
		t:               t,
		CheckDeviceFunc: func(spawner.Device) error { return nil },
		ResolveFunc:     func(b string) (string, error) { resolved = b; return "/usr/bin/" + b, nil },
		StartFunc: func(_ context.Context, s spawner.Spec) (*spawner.Handle, error) {
			spec = s
			return nil, errors.New("stop here")
		},
	}
	var n narration
	cmd := mustDecode(t, commands.KindSpawn, `{"model_id":"my model","device":"cuda:1","worker_type":"llama-cuda","worker_id":"w1","wait":"exec"}`)
	_, err := cmd.Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator(), Defaults: defaults, Catalog: cat})
	if err == nil || !strings.Contains(err.Error(), "stop here") {
		t.Fatalf("got %v, want Start's error", err)
	}
	if resolved != "llama-server" || spec.BinaryPath != "/usr/bin/llama-server" || spec.WorkerType != "llama-cuda" || spec.HealthPath != "/health" || spec.ReadyStatus != 200 {
		t.Errorf("resolved %q, spec %+v", resolved, spec)
	}
	t.Setenv("CUDA_VISIBLE_DEVICES", "")
	args, env, err := spec.Command(9200)
	if err != nil || !reflect.DeepEqual(args, []string{"--model", "my model", "--port=9200"}) ||
		!reflect.DeepEqual(env, []string{"CUDA_VISIBLE_DEVICES=1"}) {
		t.Errorf("Command(9200) = %q, %q, %v", args, env, err)
	}
}
