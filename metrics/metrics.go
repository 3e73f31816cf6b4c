// Package metrics is hive-agent's Prometheus side: the agent's counts of
// commands, workers and its NATS connection, served on --metrics-listen
// with the official client library (prometheus/client_golang), which also
// exports the Go runtime and process metrics.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Exit causes of hive_agent_worker_exits_total.
const (
	CauseExited   = "exited"   // exited by itself with status 0
	CauseFailed   = "failed"   // exited by itself with another status
	CauseSignaled = "signaled" // a signal ended it (a delete, the OOM killer, a person)
	CauseUnknown  = "unknown"  // an adopted worker: the OS reported no status
)

// Config says where the counts the agent does not keep itself come from.
// Each func is called at scrape time; nil leaves its metric out.
type Config struct {
	// Workers counts this hive's live workers.
	Workers func() int
	// NATSConnected reports whether the connection is up.
	NATSConnected func() bool
	// NATSReconnects counts reconnections since the agent started.
	NATSReconnects func() uint64
	// Logger receives the metrics server's failures; nil: slog.Default().
	Logger *slog.Logger
}

// Metrics holds the agent's metrics. Its methods are safe for concurrent
// use, and a nil *Metrics records nothing, so callers need no checks.
type Metrics struct {
	log      *slog.Logger
	reg      *prometheus.Registry
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
		log: cfg.Logger,
		reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hive_agent_commands_total",
			Help: "Commands answered, by kind and outcome code (ok on success).",
		}, []string{"kind", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hive_agent_command_duration_seconds",
			Help:    "Time from a command's arrival to its answer, by kind.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"kind"}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hive_agent_worker_exits_total",
			Help: "Workers seen exiting, by cause: exited (status 0), failed (other status), signaled, unknown (adopted, no status).",
		}, []string{"cause"}),
	}
	m.reg.MustRegister(m.commands, m.duration, m.exits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Workers != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hive_agent_workers", Help: "Workers of this hive running now.",
		}, func() float64 { return float64(cfg.Workers()) }))
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
	return m
}

// CommandDone counts one answered command; code is "ok" or its error code.
func (m *Metrics) CommandDone(kind, code string, took time.Duration) {
	if m == nil {
		return
	}
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

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Serve serves /metrics on addr until ctx ends. It returns once the
// listener is bound (an error when it cannot be), and the address bound.
func (m *Metrics) Serve(ctx context.Context, addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	return l.Addr().String(), nil
}
