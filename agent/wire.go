package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/metrics"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// wire makes the spawner, the metrics and the consumer on the agent's
// connection and hooks them together. The spawner's callbacks and the
// metrics' readers reach the consumer through a, set before the first
// callback can come (the consumer is not started yet).
func (a *Agent) wire() error {
	cfg, log, nc := a.cfg, a.cfg.Logger, a.nc
	probe, gpus := a.newGPUPolicy()
	a.gpus = gpus
	sp, err := spawner.New(spawner.Config{
		HiveID: cfg.HiveID, WorkerDirs: cfg.WorkerDirs, LogDir: cfg.LogDir,
		PortMin: cfg.PortMin, PortMax: cfg.PortMax, Logger: log, Containment: cfg.Containment,
		Devices: probe, RestartBackoff: cfg.RestartBackoff, ExitedTTL: cfg.ExitedTTL,
		OnStart:          func(w spawner.Worker) { a.cons.WorkerStarted(w) },
		OnExit:           func(w spawner.Worker, e spawner.Exit) { a.cons.WorkerExited(w, e) },
		OnPendingRestart: func(p spawner.PendingRestart) { a.cons.RestartPending(p) },
	})
	if err != nil {
		return err
	}
	a.sp = sp
	log.Info("workers are contained by "+sp.Containment(), "containment", sp.Containment(), "asked", cfg.Containment)
	if cfg.MetricsListen != "" {
		a.met = metrics.New(metrics.Config{
			Kinds: wire.Kinds, Version: cfg.Version,
			Workers: func() []metrics.Worker {
				ws, _ := sp.List(context.Background())
				out := make([]metrics.Worker, len(ws))
				for i, w := range ws {
					out[i] = metrics.Worker{Type: string(w.WorkerType), Device: w.Device, State: string(sp.StateOf(w))}
				}
				return out
			},
			// Read at scrape time, once the consumer is started.
			InFlight:       func() int { return a.cons.InFlight() },
			IntakeBacklog:  func() (uint64, uint64, bool) { return a.cons.IntakeBacklog() },
			NATSConnected:  nc.IsConnected,
			NATSReconnects: func() uint64 { return nc.Stats().Reconnects },
			Logger:         log,
		})
		if gpus != nil {
			a.met.RegisterGPU(gpuMetrics(gpus))
		}
	}
	js, err := a.jetStream()
	if err != nil {
		return err
	}
	ccfg := consumer.Config{
		HiveID: cfg.HiveID, Version: cfg.Version, Spawner: sp, MaxInFlight: cfg.MaxInFlight, Logger: log,
		Defaults: cfg.Defaults,
		// A result published while the connection was already dead, but
		// before that was noticed, is published again after the reconnect:
		// noticed within (max pings + 1) ping intervals, plus one write
		// timeout (a ping interval) that may hold the keep-alive back.
		RepublishWindow: max(15*time.Second, time.Duration(cfg.MaxPingsOut+2)*cfg.PingInterval),
		Metadata:        gpuMetadata(gpus, map[string]string{"worker_types": strings.Join(cfg.Catalog.Names(), ",")}),
		GPU:             gpus,
		Catalog:         cfg.Catalog,
		Metrics:         a.met,
		JetStream:       js,
		Health:          cfg.Health,
		DrainFile:       cfg.DrainFile,
	}
	if cfg.Consumer != nil {
		cfg.Consumer(nc, &ccfg)
	}
	a.js = ccfg.JetStream
	if a.cons, err = consumer.New(nc, ccfg); err != nil {
		return err
	}
	// Set only now: the consumer must exist before the first callback.
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		if err == nil { // we closed it ourselves
			return
		}
		log.Warn("disconnected from NATS; reconnecting", "err", err)
		a.cons.Disconnected(err)
		if cfg.OnDisconnect != nil {
			cfg.OnDisconnect(err)
		}
	})
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		log.Info("reconnected to NATS", "url", Redact(nc.ConnectedUrl()))
		a.cons.Reconnected()
		if cfg.OnReconnect != nil {
			cfg.OnReconnect()
		}
	})
	return nil
}

// jetStream is the consumer's JetStream configuration: nil when off.
func (a *Agent) jetStream() (*consumer.JetStreamConfig, error) {
	cfg := a.cfg
	if cfg.JetStream == JetStreamOff {
		return nil, nil
	}
	js, err := jetstream.New(a.nc)
	if cfg.JetStreamDomain != "" {
		js, err = jetstream.NewWithDomain(a.nc, cfg.JetStreamDomain)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &consumer.JetStreamConfig{
		JS:       js,
		Streams:  consumer.StreamsConfig{JobsMaxAge: cfg.JobsMaxAge, AckWait: cfg.IntakeAckWait},
		NoCreate: !cfg.JetStreamCreate,
		Required: cfg.JetStream == JetStreamOn,
	}, nil
}
