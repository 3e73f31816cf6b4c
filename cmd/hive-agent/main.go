// Command hive-agent runs on every machine of a hive and manages its LLM
// worker processes on command over NATS. With no --nats-url it starts an
// embedded NATS server, so it works out of the box.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/cenkalti/backoff/v4"
	"github.com/lmittmann/tint"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/version"
	"github.com/rbee/hive-agent/metrics"
	"github.com/rbee/hive-agent/spawner"
)

var _ commands.Spawner = (*spawner.Spawner)(nil)

// cli is the command line. With no subcommand, hive-agent runs the agent.
type cli struct {
	Version kong.VersionFlag `help:"Print the version and exit."`
	Run     runCmd           `cmd:"" default:"withargs" help:"Run the agent (the default when no command is given)."`

	// The client: commands to the agents, over NATS.
	Spawn   spawnCmd   `cmd:"" help:"Start a worker on a hive, printing the agent's narration as it goes."`
	Ls      lsCmd      `cmd:"" help:"List the workers of a hive, or of every hive."`
	Get     getCmd     `cmd:"" help:"Show one worker and the tail of its log."`
	Stop    stopCmd    `cmd:"" help:"Stop a worker (SIGTERM, then SIGKILL after --grace)."`
	Restart restartCmd `cmd:"" help:"Stop a worker and start it again with the spec it was started with."`
	Drain   drainCmd   `cmd:"" help:"Stop a hive from starting workers (--stop-workers: and stop them) until resume."`
	Resume  resumeCmd  `cmd:"" help:"End a hive's drain."`
	Events  eventsCmd  `cmd:"" help:"Print every hive's events as they happen; --since replays them from HIVE_EVENTS."`
	Logs    logsCmd    `cmd:"" help:"Print a worker's log; -f follows it."`
	Hives   hivesCmd   `cmd:"" help:"List every agent on the NATS system."`
	Job     jobCmd     `cmd:"" help:"Show a job's stored narration and result (-f: wait for its result)."`
	Setup   setupCmd   `cmd:"" help:"Create the JetStream streams for durable intake and stored outcomes ahead of time."`

	Catalog catalogCmd `cmd:"" help:"Check a worker catalog file."`

	Help       helpCmd       `cmd:"" help:"Show the help of hive-agent, or of one command (hive-agent help spawn)."`
	VersionCmd versionCmd    `cmd:"" name:"version" help:"Print the version."`
	Completion completionCmd `cmd:"" help:"Print a shell completion script (bash, zsh or fish)."`
}

// Exit statuses, the same for every command.
const (
	exitOK      = 0
	exitFailure = 1 // the agent stopped on an error
	exitUsage   = 2 // bad flags or configuration: nothing was started
)

func main() { os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr)) }

// newParser builds the command line parser; exit is called for --help and
// --version.
func newParser(c *cli, stdout, stderr io.Writer, exit func(int)) (*kong.Kong, error) {
	return kong.New(c,
		kong.Name("hive-agent"),
		kong.Description("Runs on every machine of an LLM hive and starts, finds and stops its inference workers on command over NATS. "+
			"With no --nats-url it starts an embedded NATS server, so it works out of the box."),
		kong.Vars{"version": "hive-agent " + version.String(), "hive_id": defaultHiveID(), "log_dir": defaultLogDir(), "jetstream_dir": defaultJetStreamDir(), "state_dir": defaultStateDir()},
		kong.Writers(stdout, stderr),
		kong.Exit(exit),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
		kong.Help(rootHelp),
	)
}

// rootHelp shows the agent's own flags for `hive-agent --help`, since
// the agent is what runs without a command, then lists the commands.
func rootHelp(opts kong.HelpOptions, ctx *kong.Context) error {
	if ctx.Selected() != nil {
		return kong.DefaultHelpPrinter(opts, ctx)
	}
	runCtx, err := kong.Trace(ctx.Kong, []string{"run"})
	if err != nil {
		return kong.DefaultHelpPrinter(opts, ctx)
	}
	if err := kong.DefaultHelpPrinter(opts, runCtx); err != nil {
		return err
	}
	w := ctx.Stdout
	fmt.Fprintln(w, "\nCommands (hive-agent <command> --help tells more):")
	for _, c := range ctx.Model.Children {
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, c.Help)
	}
	return nil
}

func mainExit(args []string, stdout, stderr io.Writer) int {
	var c cli
	exited := -1
	parser, err := newParser(&c, stdout, stderr, func(code int) { exited = code })
	if err != nil {
		fmt.Fprintln(stderr, "hive-agent: internal error:", err)
		return exitFailure
	}
	if code, done := complete(parser); done {
		return code
	}
	kctx, err := parser.Parse(args)
	if exited >= 0 { // --help or --version
		return exited
	}
	if err != nil {
		fmt.Fprintf(stderr, "hive-agent: %v%s\nRun '%s' for usage.\n", err, didYouMean(parser.Model, args, err), helpCommand(err))
		return exitUsage
	}
	if name, cc := selectedClient(kctx); cc != nil {
		return runClient(name, cc, stdout, stderr)
	}
	switch kctx.Command() {
	case "help", "help <command>":
		return c.Help.run(parser, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "hive-agent "+version.String())
		return exitOK
	case "completion <shell>":
		return c.Completion.run(parser, stdout, stderr)
	case "catalog check <file>":
		return c.Catalog.Check.run(stdout, stderr)
	default: // "run", with or without the word
		cfg, err := c.Run.config()
		if err == nil {
			err = checkDirs(cfg)
		}
		if err != nil {
			fmt.Fprintf(stderr, "hive-agent: configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
			return exitUsage
		}
		// A log reader that went away (a restarted log shipper, `| head`)
		// must not kill the agent: with SIGPIPE caught, a write to the
		// closed pipe fails with EPIPE and the log line is dropped. Caught,
		// not ignored: an ignored signal stays ignored in every worker.
		pipe := make(chan os.Signal, 1)
		signal.Notify(pipe, syscall.SIGPIPE)
		defer signal.Stop(pipe)
		log := newLogger(cfg, stderr)
		// SIGHUP (a closed terminal) stops the agent gracefully, as SIGTERM does.
		ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
		defer stop()
		if err := run(ctx, cfg, log); err != nil {
			log.Error("hive-agent stopped", "err", err)
			return exitFailure
		}
		return exitOK
	}
}

// stopSignals stop the agent gracefully; a second one stops it at once.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

func agentVersion() string { return version.String() }

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	level := logLevel(cfg.LogLevel)
	format := cfg.LogFormat
	if format == "auto" {
		format = "text"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "tint"
			}
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
// flight finished, publishes flushed. Workers are left running. It fails
// when the agent cannot serve: its connection is refused for good, or the
// server refuses one of its subscriptions (a deaf agent must not look
// healthy to a supervisor).
func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("hive-agent starting", "version", agentVersion(), "hive_id", cfg.HiveID, "pid", os.Getpid(),
		"catalog", cfg.Catalog.Source, "worker_types", strings.Join(cfg.Catalog.Names(), ","), "log_dir", cfg.LogDir, "worker_dirs", cfg.WorkerDirs, "port_range", fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax))
	for _, w := range cfg.Catalog.Warnings(nil) {
		log.Warn("catalog: "+w.Msg, "field", w.Field, "source", w.Source)
	}
	url := cfg.NATS.URL
	if url == "" {
		storeDir := ""
		if cfg.JetStream != "off" {
			storeDir = cfg.JetStreamDir
		}
		s, err := startEmbedded(cfg.NATSListen, storeDir, cfg.JetStreamDomain)
		if err != nil {
			return err
		}
		defer func() { s.Shutdown(); s.WaitForShutdown() }()
		url = s.ClientURL()
		log.Info("no --nats-url given: started an embedded NATS server", "url", url, "jetstream_dir", storeDir)
	}
	fatal := make(chan error, 1)
	nc, err := connect(ctx, cfg, url, log, fatal)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before NATS was reached")
			return nil
		}
		return err
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })

	var cons *consumer.Consumer
	var sp *spawner.Spawner
	probe, gpus := newGPUPolicy(cfg, log, func() *consumer.Consumer { return cons }, func(w spawner.Worker) []int { return sp.WorkerPIDs(w) })
	defer gpus.Close()
	sp, err = spawner.New(spawner.Config{
		HiveID: cfg.HiveID, WorkerDirs: cfg.WorkerDirs, LogDir: cfg.LogDir,
		PortMin: cfg.PortMin, PortMax: cfg.PortMax, Logger: log, Containment: cfg.Containment, Devices: probe,
		ExitedTTL:        cfg.DayTwo.ExitedTTL,
		RestartBackoff:   cfg.RestartBackoff,
		OnStart:          func(w spawner.Worker) { cons.WorkerStarted(w) },
		OnExit:           func(w spawner.Worker, e spawner.Exit) { cons.WorkerExited(w, e) },
		OnPendingRestart: func(p spawner.PendingRestart) { cons.RestartPending(p) },
	})
	if err != nil {
		nc.Close()
		return err
	}
	log.Info("workers are contained by "+sp.Containment(), "containment", sp.Containment(), "asked", cfg.Containment)
	var met *metrics.Metrics
	if cfg.MetricsListen != "" {
		met = metrics.New(metrics.Config{
			Kinds: commands.Kinds, Version: agentVersion(),
			Workers: func() []metrics.Worker {
				ws, _ := sp.List(context.Background())
				out := make([]metrics.Worker, len(ws))
				for i, w := range ws {
					out[i] = metrics.Worker{Type: string(w.WorkerType), Device: w.Device, State: string(sp.StateOf(w))}
				}
				return out
			},
			// Read at scrape time, after cons is set and started.
			InFlight:       func() int { return cons.InFlight() },
			IntakeBacklog:  func() (uint64, uint64, bool) { return cons.IntakeBacklog() },
			NATSConnected:  nc.IsConnected,
			NATSReconnects: func() uint64 { return nc.Stats().Reconnects },
			Logger:         log,
		})
		met.RegisterGPU(gpuMetrics(gpus))
	}
	jsCfg, err := jetStreamConfig(nc, cfg)
	if err != nil {
		nc.Close()
		return err
	}
	cons, err = consumer.New(nc, consumer.Config{
		HiveID: cfg.HiveID, Version: agentVersion(), Spawner: sp, MaxInFlight: cfg.MaxInFlight, Logger: log,
		Defaults: commands.Defaults{QueenURL: cfg.QueenURL, Wait: cfg.SpawnWait,
			AliveWindow: cfg.AliveWindow, ReadyTimeout: cfg.ReadyTimeout},
		// A result published while the connection was already dead, but
		// before that was noticed, is published again after the reconnect.
		RepublishWindow: max(15*time.Second, time.Duration(cfg.NATS.MaxPingsOut+1)*cfg.NATS.PingInterval),
		Metadata:        gpuMetadata(gpus, map[string]string{"worker_types": strings.Join(cfg.Catalog.Names(), ",")}),
		GPU:             gpus,
		Catalog:         cfg.Catalog,
		Metrics:         met,
		JetStream:       jsCfg,
		Health:          &consumer.HealthConfig{Defaults: cfg.DayTwo.Health},
		DrainFile:       cfg.DayTwo.DrainFile(cfg.HiveID),
	})
	if err != nil {
		nc.Close()
		return err
	}
	// Set only now: the consumer must exist before the first callback.
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		if err != nil { // nil: we closed it ourselves
			log.Warn("disconnected from NATS; reconnecting", "err", err)
			cons.Disconnected(err)
		}
	})
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		log.Info("reconnected to NATS", "url", redact(nc.ConnectedUrl()))
		cons.Reconnected()
	})
	// One agent per hive id: a second one would run some commands twice
	// (each spawn goes to one of them, and neither sees the other's start).
	// The claim is atomic (two agents started together cannot both win) and
	// re-checked while running; FindPeers also finds agents too old to claim.
	host, _ := os.Hostname()
	claimCfg := consumer.ClaimConfig{HiveID: cfg.HiveID, Host: host, Version: agentVersion(), Logger: log}
	if jsCfg != nil {
		claimCfg.JS = jsCfg.JS
	}
	claim, err := consumer.AcquireClaim(ctx, nc, claimCfg)
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			log.Info("stopped before serving")
			return nil
		}
		return err
	}
	peers, err := consumer.FindPeers(ctx, nc, cfg.HiveID)
	if err != nil {
		claim.Release()
		nc.Close()
		return fmt.Errorf("look for other agents of hive %s: %w", cfg.HiveID, err)
	}
	if len(peers) > 0 {
		claim.Release()
		nc.Close()
		return fmt.Errorf("another agent already serves hive %s: %s; stop it, or give this one another --hive-id", cfg.HiveID, peers[0])
	}
	if err := cons.Start(ctx); err != nil {
		claim.Release()
		nc.Close()
		if ctx.Err() != nil { // stopped while starting (e.g. the intake): not a failure
			log.Info("stopped before serving", "err", err)
			return nil
		}
		return err
	}
	// Workers of an earlier run are watched like our own: their exits are
	// published and what they leave behind is stopped.
	if ws, err := sp.Adopt(ctx); err != nil {
		log.Error("adopt workers of an earlier run", "err", err)
	} else if len(ws) > 0 {
		log.Info("found running workers of this hive from an earlier run; watching them", "count", len(ws))
	}
	// Checkpoints of the workers' log sizes, for logs --since.
	stopIndex := sp.IndexLogs(spawner.LogIndexInterval)
	defer stopIndex()
	if met != nil {
		addr, err := met.Serve(ctx, cfg.MetricsListen)
		if err != nil {
			cons.Close(ctx)
			claim.Release()
			nc.Close()
			return err
		}
		log.Info("serving Prometheus metrics", "url", "http://"+addr+"/metrics")
	}
	log.Info(readyHint(cfg.HiveID, url))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-fatal:
		log.Error("cannot serve; stopping", "err", runErr)
	case runErr = <-claim.Lost():
		log.Error("another agent serves this hive; stopping", "err", runErr)
	}
	signal.Reset(stopSignals...) // a second signal stops the agent at once
	why := "error"
	if cause := context.Cause(ctx); runErr == nil && cause != nil {
		why = cause.Error()
	}
	log.Info("stopping: no new commands; finishing those in flight; workers keep running (a second signal stops at once)", "wait", cfg.ShutdownWait, "reason", why)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownWait)
	defer cancel()
	// Restarts whose backoff is running are left to the next agent (their
	// records stay): they are the workers' policy, not this process's.
	sp.Close()
	stopIndex() // the last checkpoint
	err = errors.Join(runErr, cons.Close(shutdownCtx))
	claim.Release() // a successor may start at once
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

// jetStreamConfig is the consumer's JetStream configuration: nil with
// --jetstream off.
func jetStreamConfig(nc *nats.Conn, cfg Config) (*consumer.JetStreamConfig, error) {
	if cfg.JetStream == "off" {
		return nil, nil
	}
	js, err := newJetStream(nc, cfg.JetStreamDomain)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &consumer.JetStreamConfig{
		JS:       js,
		Streams:  consumer.StreamsConfig{JobsMaxAge: cfg.JobsMaxAge, AckWait: cfg.IntakeAckWait},
		NoCreate: !cfg.JetStreamCreate,
		Required: cfg.JetStream == "on",
	}, nil
}

// startEmbedded starts the embedded NATS server; with storeDir set it has
// JetStream, storing there, so durable intake works out of the box.
func startEmbedded(listen, storeDir, domain string) (*server.Server, error) {
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
	opts := &server.Options{Host: host, Port: port, NoLog: true, NoSigs: true, ServerName: "hive-agent-embedded"}
	if storeDir != "" {
		if err := os.MkdirAll(storeDir, 0o700); err != nil {
			return nil, fmt.Errorf("jetstream dir: %w", err)
		}
		opts.JetStream, opts.StoreDir, opts.JetStreamDomain = true, storeDir, domain
	}
	s, err := server.NewServer(opts)
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

// subscriptionRefused matches the subject in the server's permissions
// violation for a subscription.
var subscriptionRefused = regexp.MustCompile(`Subscription to "(\S+)"`)

// connect connects to NATS, retrying with exponential backoff (and saying
// so) until the server answers or ctx ends; once connected it reconnects
// forever. A subscription the server refuses is sent to fatal.
func connect(ctx context.Context, cfg Config, url string, log *slog.Logger, fatal chan<- error) (*nats.Conn, error) {
	// The default keep-alive (2 min, 2 pings) notices a frozen server or
	// a partition only after up to 6 min; the default write deadline
	// (1 min) hides one under load.
	opts := append(consumer.KeepAlive(cfg.NATS.PingInterval, cfg.NATS.MaxPingsOut), []nats.Option{
		nats.Name("hive-agent " + cfg.HiveID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(2 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if m := subscriptionRefused.FindStringSubmatch(err.Error()); m != nil && errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case fatal <- fmt.Errorf("the NATS server refused the agent's subscription to %q (permissions); "+
					"grant this user subscribe permission on it, the agent cannot serve without it", m[1]):
				default:
				}
				return
			}
			log.Error("NATS error", "subject", subj, "err", err)
		}),
	}...)
	opts = append(opts, cfg.NATS.opts...)
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
	log.Info("connected to NATS", "url", redact(nc.ConnectedUrl()), "server", nc.ConnectedServerName())
	return nc, nil
}
