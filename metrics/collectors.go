package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// StateRunning is the state label of a worker whose process runs.
const StateRunning = "running"

// Worker is what the worker gauge's labels say about one worker.
type Worker struct {
	// Type is its worker type (a catalog name such as cpu-llm).
	Type string
	// Device is the device it was started on (cpu, cuda:0, ...).
	Device string
	// State is its state; StateRunning when empty.
	State string
}

var workersDesc = prometheus.NewDesc("hive_agent_workers",
	"Workers of this hive running now, by worker type, device and state.",
	[]string{"worker_type", "device", "state"}, nil)

// workerCollector counts the workers by their labels at scrape time.
type workerCollector struct{ list func() []Worker }

func (c workerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- workersDesc }

func (c workerCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[Worker]int{}
	for _, w := range c.list() {
		if w.State == "" {
			w.State = StateRunning
		}
		counts[w]++
	}
	for w, n := range counts {
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(n), w.Type, w.Device, w.State)
	}
}

var (
	backlogDesc = prometheus.NewDesc("hive_agent_intake_backlog",
		"Commands stored in the hive's intake consumer and not yet delivered to the agent.", nil, nil)
	unackedDesc = prometheus.NewDesc("hive_agent_intake_unacknowledged",
		"Intake commands delivered to the agent and not yet acknowledged (queued or running).", nil, nil)
)

// intakeCollector reads the intake consumer's counts at scrape time and
// reports nothing while the intake does not run.
type intakeCollector struct {
	backlog func() (pending, unacked uint64, ok bool)
}

func (c intakeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- backlogDesc; ch <- unackedDesc }

func (c intakeCollector) Collect(ch chan<- prometheus.Metric) {
	pending, unacked, ok := c.backlog()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(unackedDesc, prometheus.GaugeValue, float64(unacked))
}
