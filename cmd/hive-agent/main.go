// Command hive-agent runs on every machine of a hive and manages its LLM
// worker processes on command over NATS. With no --nats-url it starts an
// embedded NATS server, so it works out of the box.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/lmittmann/tint"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/version"
	"github.com/rbee/hive-agent/spawner"
)

var _ commands.Spawner = (*spawner.Spawner)(nil)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hive-agent:", err)
		os.Exit(2)
	}
	if cfg.ShowVersion {
		fmt.Println("hive-agent", agentVersion())
		return
	}
	log := newLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("hive-agent stopped", "err", err)
		os.Exit(1)
	}
}

func agentVersion() string { return version.String() }

func newLogger(cfg Config, w *os.File) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel)) // checked by Validate
	format := cfg.LogFormat
	if format == "auto" {
		format = "text"
		if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "tint"
		}
	}
	var h slog.Handler
	switch format {
	case "tint":
		h = tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly})
	case "json":
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	default:
		h = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	}
	return slog.New(h)
}

// run serves until ctx ends, then stops cleanly: no new commands, those in
// flight finished, publishes flushed. Workers are left running.
func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("hive-agent starting", "version", agentVersion(), "hive_id", cfg.HiveID, "pid", os.Getpid(),
		"log_dir", cfg.LogDir, "worker_dirs", cfg.WorkerDirs, "port_range", fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax))
	var embedded *server.Server
	url := cfg.NATSURL
	if url == "" {
		s, err := startEmbedded(cfg.NATSListen)
		if err != nil {
			return err
		}
		embedded = s
		defer func() { s.Shutdown(); s.WaitForShutdown() }()
		url = s.ClientURL()
		log.Info("no --nats-url given: started an embedded NATS server", "url", url)
	}
	nc, err := connect(ctx, cfg, url, log)
	if err != nil {
		return err
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })

	var cons *consumer.Consumer
	sp, err := spawner.New(spawner.Config{
		HiveID: cfg.HiveID, WorkerDirs: cfg.WorkerDirs, LogDir: cfg.LogDir,
		PortMin: cfg.PortMin, PortMax: cfg.PortMax, Logger: log,
		OnStart: func(w spawner.Worker) { cons.WorkerStarted(w) },
		OnExit:  func(w spawner.Worker, e spawner.Exit) { cons.WorkerExited(w, e) },
	})
	if err != nil {
		nc.Close()
		return err
	}
	cons, err = consumer.New(nc, consumer.Config{
		HiveID: cfg.HiveID, Version: agentVersion(), Spawner: sp, MaxInFlight: cfg.MaxInFlight, Logger: log,
		Defaults: commands.Defaults{QueenURL: cfg.QueenURL, Wait: cfg.SpawnWait,
			AliveWindow: cfg.AliveWindow, ReadyTimeout: cfg.ReadyTimeout},
	})
	if err != nil {
		nc.Close()
		return err
	}
	if err := cons.Start(ctx); err != nil {
		nc.Close()
		return err
	}
	if ws, err := sp.List(ctx); err == nil && len(ws) > 0 {
		log.Info("found running workers of this hive from an earlier run", "count", len(ws))
	}
	if embedded != nil {
		log.Info("ready; try: nats req hive." + cfg.HiveID + ".worker.list ''")
	}

	<-ctx.Done()
	signal.Reset(syscall.SIGINT, syscall.SIGTERM) // a second signal stops the agent at once
	log.Info("stopping: no new commands; finishing those in flight; workers keep running (a second signal stops at once)", "wait", cfg.ShutdownWait)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownWait)
	defer cancel()
	err = cons.Close(shutdownCtx)
	if derr := nc.Drain(); derr != nil {
		nc.Close()
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		nc.Close()
	}
	log.Info("hive-agent stopped")
	return err
}

func startEmbedded(listen string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen %q: %w", listen, err)
	}
	var port int
	if _, err := fmt.Sscan(portStr, &port); err != nil {
		return nil, fmt.Errorf("nats listen %q: bad port", listen)
	}
	if port > 0 {
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS server cannot listen on %s (%v); is a NATS server already running? Use --nats-url nats://%s to join it, or --nats-listen for another address", listen, err, listen)
		}
		l.Close()
	}
	s, err := server.NewServer(&server.Options{Host: host, Port: port, NoLog: true, NoSigs: true, ServerName: "hive-agent-embedded"})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s not ready after 10s", listen)
	}
	return s, nil
}

// connect connects to NATS, retrying with exponential backoff (and saying
// so) until the server answers or ctx ends; once connected it reconnects
// forever.
func connect(ctx context.Context, cfg Config, url string, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("hive-agent " + cfg.HiveID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(2 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed it ourselves
				log.Warn("disconnected from NATS; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("NATS error", "subject", subj, "err", err)
		}),
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSCA))
	}
	if cfg.NATSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSCert, cfg.NATSKey))
	}
	attempt := 0
	op := func() (*nats.Conn, error) {
		attempt++
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
				return nil, backoff.Permanent(err)
			}
			return nil, err
		}
		return nc, nil
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0
	nc, err := backoff.RetryNotifyWithData(op, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		log.Warn("NATS not reachable yet; retrying", "url", redact(url), "attempt", attempt, "next_in", next.Round(time.Millisecond), "err", err)
	})
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact(url), err)
	}
	log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	return nc, nil
}

// redact hides passwords in a comma-separated list of URLs, for logs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
