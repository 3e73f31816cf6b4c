//go:build unix

package spawner

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/hive-agent/gpu"
	"github.com/rbee/hive-agent/internal/fakesmi"
)

// twoGPUs installs a fake nvidia-smi showing two H100s derived from the
// recorded one.
func twoGPUs(t *testing.T) (*fakesmi.Fake, []fakesmi.GPU) {
	t.Helper()
	gs, err := fakesmi.FromQueryCSV(readFixture(t, "nvidia-smi-query.csv"), 2)
	if err != nil {
		t.Fatal(err)
	}
	return fakesmi.Install(t, fakesmi.State{GPUs: gs}), gs
}

// Issue 14 item 5: a GPU named by UUID must honour the agent's
// CUDA_VISIBLE_DEVICES exactly as cuda:N does.
func TestDeviceProbe_UUIDHonoursVisibleDevices(t *testing.T) {
	f, gs := twoGPUs(t)
	src := gpu.NewSource(gpu.SourceConfig{Command: filepath.Join(f.Dir, "nvidia-smi")})
	u0, u1 := gs[0].UUID, gs[1].UUID
	tests := []struct {
		visible  string
		set      bool
		ok, fail []string
		want     map[string]int // device -> host index it resolves to
	}{
		{"", false, []string{"cuda:0", "cuda:1", "GPU-1", u0, u1}, []string{"cuda:2"}, map[string]int{"cuda:1": 1, u1: 1}},
		{"0", true, []string{"cuda:0", u0}, []string{"cuda:1", "GPU-1", u1}, map[string]int{"cuda:0": 0}},
		{"", true, nil, []string{"cuda:0", u0, u1}, nil},
		{"1", true, []string{"cuda:0", u1}, []string{"cuda:1", u0}, map[string]int{"cuda:0": 1, u1: 1}},
		{u1, true, []string{"cuda:0", u1}, []string{"cuda:1", u0}, map[string]int{"cuda:0": 1}},
		{"1,0", true, []string{"cuda:0", "cuda:1", u0, u1}, []string{"cuda:2"}, map[string]int{"cuda:0": 1, "cuda:1": 0}},
	}
	for _, tt := range tests {
		name := "unset"
		if tt.set {
			name = "CUDA_VISIBLE_DEVICES=" + tt.visible
		}
		t.Run(name, func(t *testing.T) {
			env := noEnv
			if tt.set {
				env = envWith("CUDA_VISIBLE_DEVICES", tt.visible)
			}
			p := DeviceProbe{GOOS: "linux", GPUs: src, NvidiaProcDir: filepath.Join(t.TempDir(), "none"), LookupEnv: env}
			for _, dev := range tt.ok {
				g, err := p.GPU(mustParse(t, dev))
				if err != nil {
					t.Errorf("%s: got %v, want it accepted", dev, err)
					continue
				}
				if want, ok := tt.want[dev]; ok && g.Index != want {
					t.Errorf("%s resolves to host GPU %d, want %d", dev, g.Index, want)
				}
			}
			for _, dev := range tt.fail {
				err := p.Check(mustParse(t, dev))
				if !errors.Is(err, ErrDeviceUnavailable) {
					t.Errorf("%s: got %v, want ErrDeviceUnavailable", dev, err)
				} else if tt.set && !strings.Contains(err.Error(), "CUDA_VISIBLE_DEVICES="+tt.visible) {
					t.Errorf("%s: error %q does not name the agent's CUDA_VISIBLE_DEVICES", dev, err)
				}
			}
		})
	}
}
