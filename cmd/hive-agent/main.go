// Command hive-agent runs on every machine of a hive and manages its LLM
// worker processes on command over NATS. With no --nats-url it starts an
// embedded NATS server, so it works out of the box.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/lmittmann/tint"

	"github.com/rbee/hive-agent/agent"
	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/version"
)

// cli is the command line. With no subcommand, hive-agent runs the agent.
type cli struct {
	Version kong.VersionFlag `help:"Print the version and exit."`
	Run     runCmd           `cmd:"" default:"withargs" help:"Run the agent (the default when no command is given)."`

	// The client: commands to the agents, over NATS.
	Spawn   spawnCmd   `cmd:"" help:"Start a worker on a hive, printing the agent's narration as it goes."`
	Ls      lsCmd      `cmd:"" help:"List the workers of a hive, or of every hive."`
	Get     getCmd     `cmd:"" help:"Show one worker and the tail of its log."`
	Stop    stopCmd    `cmd:"" help:"Stop a worker (SIGTERM, then SIGKILL after --grace)."`
	Restart restartCmd `cmd:"" help:"Stop a worker and start it again with the spec it was started with (one that exited recently: start it again)."`
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

// run runs the agent until ctx ends; a second signal after the first
// stops the process at once.
func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	a, err := agent.New(cfg.agent(log))
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		signal.Reset(stopSignals...)
	}()
	return a.Run(ctx)
}

// agent is the agent's configuration from the checked flags.
func (c Config) agent(log *slog.Logger) agent.Config {
	return agent.Config{
		HiveID: c.HiveID, Version: agentVersion(), Logger: log,
		NATSURL: c.NATS.URL, NATSListen: c.NATSListen, NATSOptions: c.NATS.opts,
		PingInterval: c.NATS.PingInterval, MaxPingsOut: c.NATS.MaxPingsOut,
		JetStream: c.JetStream, JetStreamCreate: c.JetStreamCreate, JetStreamDir: c.JetStreamDir, JetStreamDomain: c.JetStreamDomain,
		JobsMaxAge: c.JobsMaxAge, IntakeAckWait: c.IntakeAckWait,
		WorkerDirs: c.WorkerDirs, LogDir: c.LogDir, PortMin: c.PortMin, PortMax: c.PortMax, Containment: c.Containment,
		RestartBackoff: c.RestartBackoff, ExitedTTL: c.DayTwo.ExitedTTL,
		GPU:         agent.GPUConfig{Settle: c.VRAMSettle, ReleaseTimeout: c.VRAMReleaseTimeout, TaintFile: c.DayTwo.TaintFile(c.HiveID)},
		Health:      &consumer.HealthConfig{Defaults: c.DayTwo.Health},
		DrainFile:   c.DayTwo.DrainFile(c.HiveID),
		Defaults:    commands.Defaults{QueenURL: c.QueenURL, Wait: c.SpawnWait, AliveWindow: c.AliveWindow, ReadyTimeout: c.ReadyTimeout},
		MaxInFlight: c.MaxInFlight, Catalog: c.Catalog, MetricsListen: c.MetricsListen, ShutdownWait: c.ShutdownWait,
		Ready: func(url string) { log.Info(readyHint(c.HiveID, url)) },
	}
}
