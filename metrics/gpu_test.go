package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMetrics_GPU(t *testing.T) {
	m := New(Config{})
	tainted := 1
	m.RegisterGPU(GPUConfig{
		GPUs: func() []GPUStat {
			return []GPUStat{{Device: "cuda:0", UUID: "GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9", TotalMiB: 81559, UsedMiB: 30210, FreeMiB: 51349}}
		},
		Tainted: func() int { return tainted },
	})
	m.GPUReleased(8)
	m.GPUReleased(1132)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	var gpuLines []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "hive_agent_gpu") {
			gpuLines = append(gpuLines, l)
		}
	}
	t.Logf("GPU metrics:\n%s", strings.Join(gpuLines, "\n"))
	for _, want := range []string{
		`hive_agent_gpu_memory_mib{device="cuda:0",kind="free",uuid="GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9"} 51349`,
		`hive_agent_gpu_memory_mib{device="cuda:0",kind="total",uuid="GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9"} 81559`,
		`hive_agent_gpu_memory_mib{device="cuda:0",kind="used",uuid="GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9"} 30210`,
		`hive_agent_gpus_tainted 1`,
		`hive_agent_gpu_release_seconds_bucket{le="0.05"} 1`,
		`hive_agent_gpu_release_seconds_bucket{le="2"} 2`,
		`hive_agent_gpu_release_seconds_count 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var none *Metrics
	none.RegisterGPU(GPUConfig{}) // a nil *Metrics records nothing
	none.GPUReleased(1)
}
