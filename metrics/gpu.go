package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// GPUStat is one GPU's memory for hive_agent_gpu_memory_*_mib.
type GPUStat struct {
	Device, UUID      string
	TotalMiB, UsedMiB int64
	FreeMiB           int64
	Tainted           bool
}

// GPUConfig says where the GPU figures come from; each func is called at
// scrape time.
type GPUConfig struct {
	// GPUs lists the GPUs with their memory (cached nvidia-smi answers).
	GPUs func() []GPUStat
	// Tainted counts the tainted GPUs.
	Tainted func() int
}

// releaseBuckets are the release histogram's buckets, in seconds.
var releaseBuckets = []float64{.05, .1, .25, .5, 1, 2, 3, 5, 10, 15, 30, 60}

// RegisterGPU adds the GPU metrics: memory per GPU, the tainted gauge and
// the release time histogram (hive_agent_gpu_release_seconds).
func (m *Metrics) RegisterGPU(cfg GPUConfig) {
	if m == nil {
		return
	}
	m.gpuRelease = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hive_agent_gpu_release_seconds",
		Help:    "Time from the start of a GPU worker's release check to its processes leaving the GPU.",
		Buckets: releaseBuckets,
	})
	m.reg.MustRegister(m.gpuRelease, gpuCollector{cfg: cfg})
}

// GPUReleased observes one release time.
func (m *Metrics) GPUReleased(ms int64) {
	if m == nil || m.gpuRelease == nil {
		return
	}
	m.gpuRelease.Observe((time.Duration(ms) * time.Millisecond).Seconds())
}

var (
	gpuMemDesc = prometheus.NewDesc("hive_agent_gpu_memory_mib",
		"GPU memory in MiB by kind (total, used, free), as nvidia-smi reports it.", []string{"device", "uuid", "kind"}, nil)
	gpuTaintedDesc = prometheus.NewDesc("hive_agent_gpus_tainted",
		"GPUs refusing spawns because processes of an ended worker still hold memory on them.", nil, nil)
)

type gpuCollector struct{ cfg GPUConfig }

func (c gpuCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gpuMemDesc
	ch <- gpuTaintedDesc
}

func (c gpuCollector) Collect(ch chan<- prometheus.Metric) {
	if c.cfg.GPUs != nil {
		for _, g := range c.cfg.GPUs() {
			for kind, v := range map[string]int64{"total": g.TotalMiB, "used": g.UsedMiB, "free": g.FreeMiB} {
				if v >= 0 {
					ch <- prometheus.MustNewConstMetric(gpuMemDesc, prometheus.GaugeValue, float64(v), g.Device, g.UUID, kind)
				}
			}
		}
	}
	if c.cfg.Tainted != nil {
		ch <- prometheus.MustNewConstMetric(gpuTaintedDesc, prometheus.GaugeValue, float64(c.cfg.Tainted()))
	}
}
