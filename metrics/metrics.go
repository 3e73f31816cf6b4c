// Package metrics is hive-agent's Prometheus side: the agent's counts of
// commands, workers and its NATS connection, served on --metrics-listen
// with the official client library (prometheus/client_golang), which also
// exports the Go runtime and process metrics.
//
// Every label value comes from a closed set the agent knows (command kinds,
// error codes, worker types of its catalog, devices, states): a request to
// a subject the agent does not know is counted under kind "unknown", so
// nobody on the NATS system can grow the number of series.
package metrics

import (
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Exit causes of hive_agent_worker_exits_total.
const (
	CauseExited   = "exited"   // exited by itself with status 0
	CauseFailed   = "failed"   // exited by itself with another status
	CauseSignaled = "signaled" // a signal ended it (a delete, the OOM killer, a person)
	CauseUnknown  = "unknown"  // an adopted worker: the OS reported no status
)

// UnknownKind is the kind label of commands whose kind is not in
// Config.Kinds: requests to subjects that name no command.
const UnknownKind = "unknown"

// DurationBuckets are the bounds (seconds) of
// hive_agent_command_duration_seconds: from half a millisecond for a list
// to an hour for a spawn that waits for a slow model to load.
var DurationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}

// Config says where the counts the agent does not keep itself come from.
// Each func is called at scrape time; nil leaves its metric out.
type Config struct {
	// Kinds are the command kinds that get their own label value; any
	// other kind is counted as UnknownKind.
	Kinds []string
	// Version is the agent's version for hive_agent_build_info.
	Version string
	// Workers lists this hive's live workers.
	Workers func() []Worker
	// InFlight counts the commands running now.
	InFlight func() int
	// IntakeBacklog reports the intake consumer's stored commands not yet
	// delivered and those delivered but not acknowledged; ok is false when
	// the intake does not run (the metrics are then left out of the scrape).
	IntakeBacklog func() (pending, unacked uint64, ok bool)
	// NATSConnected reports whether the connection is up.
	NATSConnected func() bool
	// NATSReconnects counts reconnections since the agent started.
	NATSReconnects func() uint64
	// Logger receives the metrics server's warnings and failures; nil:
	// slog.Default().
	Logger *slog.Logger
}

// Metrics holds the agent's metrics. Its methods are safe for concurrent
// use, and a nil *Metrics records nothing, so callers need no checks.
type Metrics struct {
	log      *slog.Logger
	reg      *prometheus.Registry
	kinds    []string
	commands *prometheus.CounterVec
	duration *prometheus.HistogramVec
	exits    *prometheus.CounterVec
	// gpuRelease is set by RegisterGPU (gpu.go).
	gpuRelease prometheus.Histogram
}

// New registers every metric in a registry of its own.
func New(cfg Config) *Metrics {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Metrics{
		log:   cfg.Logger,
		reg:   prometheus.NewRegistry(),
		kinds: slices.Clone(cfg.Kinds),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hive_agent_commands_total",
			Help: "Commands answered, by kind (unknown for subjects that name no command) and outcome code (ok on success).",
		}, []string{"kind", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hive_agent_command_duration_seconds",
			Help:    "Time from a command's arrival to its answer, by kind.",
			Buckets: DurationBuckets,
		}, []string{"kind"}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hive_agent_worker_exits_total",
			Help: "Workers seen exiting, by cause: exited (status 0), failed (other status), signaled, unknown (adopted, no status).",
		}, []string{"cause"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "hive_agent_build_info",
		Help:        "Always 1; its labels say which build of hive-agent runs.",
		ConstLabels: prometheus.Labels{"version": cfg.Version, "go_version": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(m.commands, m.duration, m.exits, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Workers != nil {
		m.reg.MustRegister(workerCollector{list: cfg.Workers})
	}
	m.registerFuncs(cfg)
	return m
}

// registerFuncs registers the gauges and counters read at scrape time.
func (m *Metrics) registerFuncs(cfg Config) {
	if cfg.InFlight != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hive_agent_commands_in_flight", Help: "Commands running now (request/reply and intake).",
		}, func() float64 { return float64(cfg.InFlight()) }))
	}
	if cfg.IntakeBacklog != nil {
		m.reg.MustRegister(intakeCollector{backlog: cfg.IntakeBacklog})
	}
	if cfg.NATSConnected != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hive_agent_nats_connected", Help: "1 while the agent is connected to NATS, else 0.",
		}, func() float64 {
			if cfg.NATSConnected() {
				return 1
			}
			return 0
		}))
	}
	if cfg.NATSReconnects != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hive_agent_nats_reconnects_total", Help: "Reconnections to NATS since the agent started.",
		}, func() float64 { return float64(cfg.NATSReconnects()) }))
	}
}

// Kind is the label value of a command kind: itself when it is one of
// Config.Kinds, else UnknownKind.
func (m *Metrics) Kind(kind string) string {
	if m != nil && slices.Contains(m.kinds, kind) {
		return kind
	}
	return UnknownKind
}

// CommandDone counts one answered command; code is "ok" or its error code.
// A kind that is not one of Config.Kinds is counted as UnknownKind.
func (m *Metrics) CommandDone(kind, code string, took time.Duration) {
	if m == nil {
		return
	}
	kind = m.Kind(kind)
	m.commands.WithLabelValues(kind, code).Inc()
	m.duration.WithLabelValues(kind).Observe(took.Seconds())
}

// WorkerExited counts one worker exit by its cause (Cause* constants).
func (m *Metrics) WorkerExited(cause string) {
	if m == nil {
		return
	}
	m.exits.WithLabelValues(cause).Inc()
}
