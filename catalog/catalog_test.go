package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDeviceKind(t *testing.T) {
	uuid := fixtureUUID(t)
	for device, want := range map[string]string{
		"cpu": "cpu", "CPU-0": "cpu", "CPU-9999": "cpu", "cuda:0": "cuda", "GPU-12": "cuda",
		uuid: "cuda", "metal": "metal",
		"": "", "CPU": "", "cuda": "", "cuda:": "", "GPU-": "", "GPU-10000": "", "Metal": "", "cpu ": "",
		uuid + "0": "", strings.ToUpper(uuid): "", "MIG-" + uuid[4:]: "",
	} {
		got, err := DeviceKind(device)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("DeviceKind(%q) = %q, %v; want %q", device, got, err, want)
		}
	}
}

func TestCatalog_Lookup(t *testing.T) {
	c := mustParse(t, `
worker_types:
  vllm: {binary: vllm, devices: [cuda]}
default_types:
  cuda: vllm
`)
	tests := []struct {
		name, typ, kind, want string
		is                    error
	}{
		{"default for cuda from the file", "", "cuda", "vllm", nil},
		{"builtin default for cpu", "", "cpu", "cpu-llm", nil},
		{"by name", "cuda-llm", "cuda", "cuda-llm", nil},
		{"unknown type", "llama", "cpu", "", ErrUnknownType},
		{"device not accepted", "vllm", "cpu", "", ErrDeviceNotAccepted},
		{"unknown kind", "", "rocm", "", ErrDeviceNotAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Lookup(tt.typ, tt.kind)
			if !errors.Is(err, tt.is) || got.Name != tt.want {
				t.Fatalf("Lookup(%q, %q) = %q, %v; want %q, %v", tt.typ, tt.kind, got.Name, err, tt.want, tt.is)
			}
		})
	}
	_, err := c.Lookup("llama", "cpu")
	var unknown *UnknownTypeError
	if !errors.As(err, &unknown) || !slices.Equal(unknown.Known, []string{"cpu-llm", "cuda-llm", "metal-llm", "vllm"}) {
		t.Fatalf("Lookup(llama) = %v, want an *UnknownTypeError with the known names", err)
	}
	if want := `unknown worker type "llama": known types are cpu-llm, cuda-llm, metal-llm, vllm`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestCatalog_TypeIsACopy(t *testing.T) {
	c := Builtin()
	typ, _ := c.Type("cpu-llm")
	typ.Args[0] = "--changed"
	typ.Devices[0] = "metal"
	again, _ := c.Type("cpu-llm")
	if again.Args[0] != "--worker-id" || again.Devices[0] != "cpu" {
		t.Errorf("changing a returned Type changed the catalog: %+v", again)
	}
}
