package agent

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/gpu"
	"github.com/rbee/hive-agent/metrics"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// gpuStartWait bounds how long the agent waits for nvidia-smi's first
// answer before it registers (the metadata's devices and gpus); a hung
// nvidia-smi delays serving by at most this.
const gpuStartWait = 2 * time.Second

// newGPUPolicy returns the device probe and the GPU policy, sharing one
// nvidia-smi source, and asks nvidia-smi once in the background so that
// the metadata is usually ready by the time the agent registers. The
// policy reaches the spawner and the consumer through a, once they exist.
// With GPU.Off the probe is Config.Devices and the policy nil.
func (a *Agent) newGPUPolicy() (spawner.DeviceProbe, *commands.GPUPolicy) {
	cfg := a.cfg.GPU
	probe := a.cfg.Devices
	if cfg.Off {
		return probe, nil
	}
	src := cfg.Source
	if src == nil {
		src = gpu.NewSource(gpu.SourceConfig{})
	}
	probe.GPUs = src
	p := commands.NewGPUPolicy(commands.GPUConfig{
		Source: src, Resolve: probe.GPU, Settle: cfg.Settle, ReleaseTimeout: cfg.ReleaseTimeout,
		Poll: cfg.Poll, Recheck: cfg.Recheck, TaintFile: cfg.TaintFile, Logger: a.cfg.Logger,
		Visible: func() ([]gpu.GPU, error) {
			vis, _, err := probe.VisibleGPUs()
			return vis, err
		},
		PIDs:       func(w spawner.Worker) []int { return a.sp.WorkerPIDs(w) },
		OnReleased: func(ev wire.GPUReleased) { a.cons.GPUReleased(ev) },
		OnTainted:  func(ev wire.GPUTainted) { a.cons.GPUTainted(ev) },
	})
	if runtime.GOOS != "darwin" {
		go src.Snapshot(context.Background()) //nolint:errcheck // warms the cache
	}
	return probe, p
}

// gpuMetadata adds devices (cpu, one cuda:N per visible GPU, metal on
// macOS; the comma list older clients read) and gpus (JSON, the GPUs as
// at start; live figures are in the stats) to md, waiting for nvidia-smi
// at most gpuStartWait.
func gpuMetadata(p *commands.GPUPolicy, md map[string]string) map[string]string {
	devices := []string{"cpu"}
	if runtime.GOOS == "darwin" {
		devices = append(devices, "metal")
	} else {
		done := make(chan []wire.GPUInfo, 1)
		go func() {
			gs, _ := p.GPUs()
			done <- gs
		}()
		select {
		case gs := <-done:
			for _, g := range gs {
				devices = append(devices, g.Device)
			}
			if len(gs) > 0 {
				b, _ := json.Marshal(gs)
				md["gpus"] = string(b)
			}
		case <-time.After(gpuStartWait):
		}
	}
	md["devices"] = strings.Join(devices, ",")
	return md
}

// gpuMetrics are the GPU figures for Prometheus.
func gpuMetrics(p *commands.GPUPolicy) metrics.GPUConfig {
	return metrics.GPUConfig{
		Tainted: p.Tainted,
		GPUs: func() []metrics.GPUStat {
			gs, _ := p.GPUs()
			out := make([]metrics.GPUStat, 0, len(gs))
			for _, g := range gs {
				out = append(out, metrics.GPUStat{Device: g.Device, UUID: g.UUID, TotalMiB: g.MemoryTotalMiB,
					UsedMiB: g.MemoryUsedMiB, FreeMiB: g.MemoryFreeMiB, Tainted: g.Tainted})
			}
			return out
		},
	}
}
