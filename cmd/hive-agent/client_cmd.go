package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/agent"
	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/subjects"
)

// exitNoAgent is the client commands' status when no agent answered: no
// server, nobody serving the hive, or no answer within --timeout.
const exitNoAgent = 3

// exitInterrupted is the shell's status for a command stopped by Ctrl-C.
const exitInterrupted = 130

// defaultClientTimeout is how long a client command waits for its answer
// unless --timeout says otherwise.
const defaultClientTimeout = 30 * time.Second

// clientFlags are the flags every client command shares. The server flag is
// --server, not the agent's --nats-url: for a client an empty URL means
// nothing, and the agent's embedded server is the natural default.
type clientFlags struct {
	Server   string        `name:"server" short:"s" env:"NATS_URL" default:"nats://127.0.0.1:4222" help:"NATS server URL(s), comma-separated; host:port means nats://host:port (the agent's embedded server by default)."`
	JSON     bool          `name:"json" help:"Print the answer as JSON on stdout."`
	Timeout  time.Duration `name:"timeout" placeholder:"30s" help:"How long to wait for an answer."`
	natsAuth `embed:""`
}

func (f *clientFlags) common() *clientFlags { return f }

// clientCommand is one client subcommand: it checks its own flags, then
// runs with a connected client.
type clientCommand interface {
	common() *clientFlags
	// check finds usage errors before anything is connected.
	check() error
	run(ctx context.Context, o *output, c *client.Client) error
}

// usageError is a problem with the command line: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError carries an exit status for a failure the command has already
// reported on stderr (e.g. ls --all with a hive that did not answer).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// selectedClient is the client command kong selected and its name, or nil
// for the agent.
func selectedClient(kctx *kong.Context) (string, clientCommand) {
	n := kctx.Selected()
	if n == nil || !n.Target.CanAddr() {
		return "", nil
	}
	cc, _ := n.Target.Addr().Interface().(clientCommand)
	return n.Name, cc
}

// runClient checks cc's flags, connects, runs it until it ends or Ctrl-C,
// and turns its outcome into the exit status: 0 ok, 1 the agent answered
// an error, 2 usage, 3 no agent answered.
func runClient(name string, cc clientCommand, stdout, stderr io.Writer) int {
	o := newOutput(stdout, stderr)
	f := cc.common()
	opts, err := f.config()
	if err == nil {
		err = cc.check()
	}
	if err != nil {
		fmt.Fprintf(stderr, "hive-agent: %s\nRun 'hive-agent %s --help' for usage.\n", strings.ReplaceAll(err.Error(), "\n", "\n  "), name)
		return exitUsage
	}
	nc, err := nats.Connect(f.Server, append(opts, nats.Name("hive-agent client"))...)
	if err != nil {
		o.errorf("cannot reach NATS at %s: %v", agent.Redact(f.Server), err)
		return exitNoAgent
	}
	defer nc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	copts := []client.Option{client.WithTimeout(f.timeout())}
	if d, ok := cc.(interface{ domain() string }); ok {
		copts = append(copts, client.WithJetStreamDomain(d.domain()))
	}
	c := client.New(nc, copts...)
	return o.exit(ctx, cc.run(ctx, o, c))
}

// config checks the server URLs and credential files.
func (f *clientFlags) config() ([]nats.Option, error) {
	var errs []error
	f.Server = withScheme(f.Server)
	if strings.TrimSpace(f.Server) == "" {
		errs = append(errs, errors.New("--server (NATS_URL): must not be empty"))
	} else if err := checkURLs(f.Server); err != nil {
		errs = append(errs, fmt.Errorf("--server (NATS_URL): %w", err))
	}
	if f.Timeout < 0 {
		errs = append(errs, fmt.Errorf("--timeout %v: want a positive duration such as 500ms or 2m", f.Timeout))
	}
	opts, err := f.natsAuth.options()
	return opts, errors.Join(append(errs, err)...)
}

func (f *clientFlags) timeout() time.Duration {
	if f.Timeout > 0 {
		return f.Timeout
	}
	return defaultClientTimeout
}

// exit reports err on stderr and returns the exit status it stands for.
func (o *output) exit(ctx context.Context, err error) int {
	var ae *client.AgentError
	var pe *client.PermissionError
	var ee exitError
	var ue usageError
	var un *client.UnansweredError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue), errors.Is(err, client.ErrInvalid):
		fmt.Fprintf(o.stderr, "hive-agent: %v\n", err)
		return exitUsage
	case errors.As(err, &ae):
		o.errorf("%s", ae)
		return exitFailure
	case errors.As(err, &pe):
		o.errorf("%s", pe)
		return exitFailure
	case errors.Is(err, client.ErrNoAgent):
		o.errorf("%v", err)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			fmt.Fprintln(o.stderr, "(nothing serves that hive on this NATS system; `hive-agent hives` lists the agents that are there)")
		case errors.As(err, &un):
			fmt.Fprintf(o.stderr, "(the command was sent under job id %s and may still run: an agent that is slow, stopped or cut off from NATS runs it when it can; "+
				"to find out: hive-agent job %s, or hive-agent ls --hive %s)\n", un.JobID, un.JobID, un.Hive)
		}
		return exitNoAgent
	case ctx.Err() != nil:
		o.errorf("interrupted: %v", err)
		return exitInterrupted
	}
	o.errorf("%v", err)
	return exitFailure
}

// hiveFlag is --hive for the commands that act on one hive.
type hiveFlag struct {
	Hive string `name:"hive" short:"H" env:"HIVE_ID" required:"" help:"The hive to ask (its agent's --hive-id)."`
}

// checkToken checks an id the way the agent will, naming the flag, so that
// a typo is a usage error and not a request nobody can serve.
func checkToken(flag, v string) error {
	if err := subjects.ValidToken(v); err != nil {
		return usagef("%s %q: %v", flag, v, err)
	}
	return nil
}

// workerArg is the worker id argument of get, stop and logs.
type workerArg struct {
	Worker string `arg:"" name:"worker" help:"The worker id."`
}

// checkIDs checks --hive and, when given, the worker argument.
func (h *hiveFlag) checkIDs(w *workerArg) error {
	err := checkToken("--hive", h.Hive)
	if err == nil && w != nil {
		err = checkToken("<worker>", w.Worker)
	}
	return err
}
