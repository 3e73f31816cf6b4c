// Package agent is one hive-agent: its NATS connection (or an embedded
// server), the spawner, the consumer with its intake, metrics, the check
// that no other agent serves its hive, and device discovery, wired once.
// cmd/hive-agent parses flags into a Config and runs it; tests and tools
// start the same agent in process.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/metrics"
	"github.com/rbee/hive-agent/spawner"
)

var _ commands.Spawner = (*spawner.Spawner)(nil)

// Start's errors when its context ended before the agent served.
var (
	// ErrNotReached: the NATS server never answered.
	ErrNotReached = errors.New("stopped before NATS was reached")
	// ErrNotServing: connected, but not yet serving (e.g. claiming the hive).
	ErrNotServing = errors.New("stopped before serving")
)

// Agent is one running hive-agent. Start, Close and Run are not for
// concurrent use; the accessors are, once Start returned.
type Agent struct {
	cfg Config

	srv    *server.Server // the embedded server; nil with a NATS URL
	nc     *nats.Conn
	closed chan struct{} // closed when nc is
	fatal  chan error    // an error the agent cannot serve past
	sp     *spawner.Spawner
	cons   *consumer.Consumer
	met    *metrics.Metrics
	gpus   *commands.GPUPolicy
	claim  *consumer.Claim // nil with SkipPeerCheck
	js     *consumer.JetStreamConfig
	// stopIndex ends the checkpoints of the workers' log sizes (logs --since).
	stopIndex func()

	closeOnce sync.Once
	closeErr  error
}

// New checks cfg and returns an agent that has started nothing yet.
func New(cfg Config) (*Agent, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, closed: make(chan struct{}), fatal: make(chan error, 1)}, nil
}

// Conn is the agent's NATS connection; nil before Start.
func (a *Agent) Conn() *nats.Conn { return a.nc }

// Spawner is the agent's spawner; nil before Start.
func (a *Agent) Spawner() *spawner.Spawner { return a.sp }

// Consumer is the agent's consumer; nil before Start.
func (a *Agent) Consumer() *consumer.Consumer { return a.cons }

// Server is the embedded NATS server; nil when the agent joined one.
func (a *Agent) Server() *server.Server { return a.srv }

// Run starts the agent and serves until ctx ends, then stops cleanly: no
// new commands, those in flight finished (up to ShutdownWait), publishes
// flushed. Workers are left running. It fails when the agent cannot
// serve: its connection is refused for good, or the server refuses one of
// its subscriptions (a deaf agent must not look healthy to a supervisor).
func (a *Agent) Run(ctx context.Context) error {
	log := a.cfg.Logger
	if err := a.Start(ctx); err != nil {
		if errors.Is(err, ErrNotReached) || errors.Is(err, ErrNotServing) {
			log.Info(err.Error())
			return nil
		}
		return err
	}
	var lost <-chan error
	if a.claim != nil {
		lost = a.claim.Lost()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-a.fatal:
		log.Error("cannot serve; stopping", "err", runErr)
	case runErr = <-lost:
		log.Error("another agent serves this hive; stopping", "err", runErr)
	}
	why := "error"
	if cause := context.Cause(ctx); runErr == nil && cause != nil {
		why = cause.Error()
	}
	log.Info("stopping: no new commands; finishing those in flight; workers keep running (a second signal stops at once)", "wait", a.cfg.ShutdownWait, "reason", why)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownWait)
	defer cancel()
	err := errors.Join(runErr, a.Close(shutdownCtx))
	log.Info("hive-agent stopped")
	return err
}

// Start connects (retrying until the server answers or ctx ends), checks
// that no other agent serves the hive, and serves commands; it returns
// once the agent serves. On an error everything it started is stopped.
func (a *Agent) Start(ctx context.Context) error {
	cfg, log := a.cfg, a.cfg.Logger
	log.Info("hive-agent starting", "version", cfg.Version, "hive_id", cfg.HiveID, "pid", os.Getpid(),
		"catalog", cfg.Catalog.Source, "worker_types", strings.Join(cfg.Catalog.Names(), ","), "log_dir", cfg.LogDir,
		"worker_dirs", cfg.WorkerDirs, "port_range", fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax))
	for _, w := range cfg.Catalog.Warnings(nil) {
		log.Warn("catalog: "+w.Msg, "field", w.Field, "source", w.Source)
	}
	url, err := a.start(ctx)
	if err != nil {
		a.Close(context.Background())
		switch {
		case ctx.Err() != nil && a.nc == nil:
			return ErrNotReached
		case ctx.Err() != nil:
			return ErrNotServing
		}
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(url)
	}
	return nil
}

// start does Start's work and returns the URL it connected to.
func (a *Agent) start(ctx context.Context) (string, error) {
	cfg, log := a.cfg, a.cfg.Logger
	url := cfg.NATSURL
	if url == "" {
		storeDir := ""
		if cfg.JetStream != JetStreamOff {
			storeDir = cfg.JetStreamDir
		}
		s, err := startEmbedded(cfg.NATSListen, storeDir, cfg.JetStreamDomain)
		if err != nil {
			return "", err
		}
		a.srv, url = s, s.ClientURL()
		log.Info("no --nats-url given: started an embedded NATS server", "url", url, "jetstream_dir", storeDir)
	}
	nc, err := a.connect(ctx, url)
	if err != nil {
		return "", err
	}
	a.nc = nc
	nc.SetClosedHandler(func(*nats.Conn) { close(a.closed) })
	if err := a.wire(); err != nil {
		return "", err
	}
	// One agent per hive id: a second one would run some commands twice
	// (each spawn goes to one of them, and neither sees the other's start).
	// The claim is atomic (two agents started together cannot both win) and
	// re-checked while running; FindPeers also finds agents too old to claim.
	if !cfg.SkipPeerCheck {
		host, _ := os.Hostname()
		claimCfg := consumer.ClaimConfig{HiveID: cfg.HiveID, Host: host, Version: cfg.Version, Logger: log}
		if a.js != nil {
			claimCfg.JS = a.js.JS
		}
		if a.claim, err = consumer.AcquireClaim(ctx, nc, claimCfg); err != nil {
			return "", err
		}
		peers, err := consumer.FindPeers(ctx, nc, cfg.HiveID)
		if err != nil {
			return "", fmt.Errorf("look for other agents of hive %s: %w", cfg.HiveID, err)
		}
		if len(peers) > 0 {
			return "", fmt.Errorf("another agent already serves hive %s: %s; stop it, or give this one another --hive-id", cfg.HiveID, peers[0])
		}
	}
	if err := a.cons.Start(ctx); err != nil {
		return "", err
	}
	a.gpus.ResumeTaints() // their releases are published from now on
	// Workers of an earlier run are watched like our own: their exits are
	// published and what they leave behind is stopped.
	if ws, err := a.sp.Adopt(ctx); err != nil {
		log.Error("adopt workers of an earlier run", "err", err)
	} else if len(ws) > 0 {
		log.Info("found running workers of this hive from an earlier run; watching them", "count", len(ws))
	}
	// Checkpoints of the workers' log sizes, for logs --since.
	a.stopIndex = a.sp.IndexLogs(spawner.LogIndexInterval)
	if a.met != nil {
		addr, err := a.met.Serve(ctx, cfg.MetricsListen)
		if err != nil {
			return "", err
		}
		log.Info("serving Prometheus metrics", "url", "http://"+addr+"/metrics")
	}
	return url, nil
}

// Close stops serving: no new commands, those in flight finished until
// ctx ends, the connection drained and closed, the embedded server shut
// down. Workers keep running. It is safe to call more than once.
func (a *Agent) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		// Restarts whose backoff is running are left to the next agent
		// (their records stay): they are the workers' policy, not this process's.
		if a.sp != nil {
			a.sp.Close()
		}
		if a.stopIndex != nil {
			a.stopIndex() // the last checkpoint
		}
		if a.cons != nil {
			a.closeErr = a.cons.Close(ctx)
		}
		if a.claim != nil {
			a.claim.Release() // a successor may start at once
		}
		a.gpus.Close()
		if a.nc != nil {
			// Drained when connected, so what was published goes out;
			// without a server there is nothing to drain to.
			if !a.nc.IsConnected() || a.nc.Drain() != nil {
				a.nc.Close()
			}
			select {
			case <-a.closed:
			case <-time.After(10 * time.Second):
				a.nc.Close()
			}
		}
		if a.srv != nil {
			a.srv.Shutdown()
			a.srv.WaitForShutdown()
		}
	})
	return a.closeErr
}
