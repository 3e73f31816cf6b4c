// Package consumer is hive-agent's NATS side: a micro service whose
// endpoints receive worker commands, run them concurrently up to a limit,
// and publish the outcome as the reply, on job.<job_id>.result, and as
// narration events on job.<job_id>.narration.
package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/internal/version"
	"github.com/rbee/hive-agent/subjects"
)

// ServiceName is the micro service name every hive registers under, so
// `nats micro ls` finds them all.
const ServiceName = "hive-agent"

// unknownQueue is the queue group of the catch-all endpoint. It differs
// from the command endpoints' group so the catch-all never steals a known
// command: it sees every message and answers only unknown ones.
const unknownQueue = "hive-agent-unknown"

// replyHeaderRoom is kept free of a reply's max payload for its headers.
const replyHeaderRoom = 1024

// closeAfterCancel bounds how long Close waits for interrupted commands
// (a delete finishing with SIGKILL takes up to spawner.KillWait).
const closeAfterCancel = 15 * time.Second

// Config configures a Consumer.
type Config struct {
	HiveID string
	// Version is the agent's version as the build carries it; the service
	// registers a SemVer derived from it and keeps it as is in its metadata.
	Version  string
	Spawner  commands.Spawner
	Defaults commands.Defaults
	// MaxInFlight bounds the commands run at once; beyond it callers get busy.
	MaxInFlight int
	Logger      *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 32
	}
	if c.Version == "" {
		c.Version = "0.0.0"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if err := subjects.ValidToken(c.HiveID); err != nil {
		errs = append(errs, fmt.Errorf("hive id %q: %w", c.HiveID, err))
	}
	if c.Spawner == nil {
		errs = append(errs, errors.New("spawner: must be set"))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max in flight %d: must be at least 1", c.MaxInFlight))
	}
	return errors.Join(errs...)
}

// Consumer serves one hive's worker commands over NATS.
type Consumer struct {
	cfg     Config
	nc      *nats.Conn
	log     *slog.Logger
	svc     micro.Service
	unknown *nats.Subscription

	sem      chan struct{}
	inflight sync.WaitGroup
	closeMu  sync.Mutex // guards closing and inflight.Add against Close
	closing  bool
	// runCtx is the context commands run with; cancelled when Close gives up waiting.
	runCtx    context.Context
	cancelRun context.CancelFunc

	jobs   jobs
	heldMu sync.Mutex
	held   map[string]*job // narration sequences kept for running workers

	stats stats
}

// New returns a Consumer that will serve on nc once started.
func New(nc *nats.Conn, cfg Config) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Consumer{
		cfg: cfg, nc: nc, log: cfg.Logger.With("hive_id", cfg.HiveID),
		sem: make(chan struct{}, cfg.MaxInFlight), runCtx: ctx, cancelRun: cancel,
		held: map[string]*job{}, stats: stats{byKind: map[string]uint64{}, byCode: map[string]map[string]uint64{}},
	}, nil
}

// Start registers the micro service and its endpoints.
func (c *Consumer) Start(ctx context.Context) error {
	group, err := subjects.WorkerCommandPrefix(c.cfg.HiveID)
	if err != nil {
		return err
	}
	svc, err := micro.AddService(c.nc, micro.Config{
		Name:        ServiceName,
		Version:     version.SemVer(c.cfg.Version), // micro accepts only strict SemVer
		Description: "Starts and stops LLM worker processes of hive " + c.cfg.HiveID,
		Metadata:    map[string]string{"hive_id": c.cfg.HiveID, "version": c.cfg.Version},
		StatsHandler: func(e *micro.Endpoint) any {
			return c.stats.snapshot("worker."+e.Name, len(c.sem), c.cfg.MaxInFlight)
		},
	})
	if err != nil {
		return fmt.Errorf("add micro service: %w", err)
	}
	for _, cmd := range subjects.Commands {
		subj, err := subjects.WorkerCommand(c.cfg.HiveID, cmd)
		if err != nil {
			return errors.Join(err, svc.Stop())
		}
		kind := "worker." + cmd
		handler := micro.HandlerFunc(func(req micro.Request) {
			c.dispatch(kind, inbound{subject: req.Subject(), reply: req.Reply(), data: req.Data()})
		})
		if err := svc.AddEndpoint(cmd, handler, micro.WithEndpointSubject(subj)); err != nil {
			return errors.Join(fmt.Errorf("add endpoint %s: %w", cmd, err), svc.Stop())
		}
	}
	// Any other subject under the group gets unknown_command. This is a plain
	// queue subscription, not an endpoint: it sees every command too (and
	// ignores the known ones), which would double the service's counts. Its
	// queue group differs from the endpoints', so it never takes a known
	// command from them.
	wildcard, _ := subjects.WorkerCommandWildcard(c.cfg.HiveID)
	unknown, err := c.nc.QueueSubscribe(wildcard, unknownQueue, func(m *nats.Msg) {
		cmd := strings.TrimPrefix(m.Subject, group+".")
		if slices.Contains(subjects.Commands, cmd) {
			return // served by its own endpoint
		}
		c.dispatch("worker."+cmd, inbound{subject: m.Subject, reply: m.Reply, data: m.Data})
	})
	if err != nil {
		return errors.Join(fmt.Errorf("subscribe %s: %w", wildcard, err), svc.Stop())
	}
	c.unknown = unknown
	c.svc = svc
	// Subscriptions are sent asynchronously; once Start returns the agent
	// must be reachable, so wait for the server to have them all.
	if err := c.nc.FlushTimeout(10 * time.Second); err != nil {
		return errors.Join(fmt.Errorf("flush subscriptions: %w", err), svc.Stop())
	}
	c.log.Info("serving worker commands", "subjects", group+".{spawn,delete,list,get}",
		"max_in_flight", c.cfg.MaxInFlight, "service_id", svc.Info().ID)
	return nil
}

// inbound is what a command needs of its request message. It is copied
// out before the handler returns: micro reads its request's state after the
// handler returns, so a micro.Request must not be touched from another
// goroutine; replies go out through the connection instead.
type inbound struct {
	subject, reply string
	data           []byte
}

// dispatch hands each command to its own goroutine so a slow command never
// holds up another, and answers busy beyond the in-flight limit.
func (c *Consumer) dispatch(kind string, in inbound) {
	// Messages already on their way when Close stopped the subscriptions
	// still arrive; they are answered, not run, so Close's wait stays valid.
	c.closeMu.Lock()
	if c.closing {
		c.closeMu.Unlock()
		c.run(kind, in, &commands.Error{Code: commands.CodeBusy,
			Message: fmt.Sprintf("hive %s is stopping; send the command again once it is back", c.cfg.HiveID)})
		return
	}
	select {
	case c.sem <- struct{}{}:
	default:
		c.closeMu.Unlock()
		c.run(kind, in, &commands.Error{Code: commands.CodeBusy,
			Message: fmt.Sprintf("hive %s is running %d commands, its limit; retry shortly", c.cfg.HiveID, c.cfg.MaxInFlight)})
		return
	}
	c.inflight.Add(1)
	c.closeMu.Unlock()
	go func() {
		defer c.inflight.Done()
		defer func() { <-c.sem }()
		c.run(kind, in, nil)
	}()
}

// Reply is the body of every reply and of job.<job_id>.result.
type Reply struct {
	OK        bool            `json:"ok"`
	Kind      string          `json:"kind"`
	HiveID    string          `json:"hive_id"`
	JobID     string          `json:"job_id"`
	CommandID string          `json:"command_id"`
	Result    any             `json:"result,omitempty"`
	Error     *commands.Error `json:"error,omitempty"`
}

// run executes one command (or reports refuse, when set) and publishes its
// narration, result and reply.
func (c *Consumer) run(kind string, in inbound, refuse *commands.Error) {
	start := time.Now()
	cmd, env, decodeErr := commands.Decode(kind, in.data)
	j := c.jobs.acquire(env.JobID)
	defer c.jobs.release(j)
	n := c.narrator(j, env.CommandID)
	verb := actionVerb(kind)
	n.Narrate("worker_"+verb+"_start", commands.LevelInfo,
		fmt.Sprintf("Hive %s received %s command %s.", c.cfg.HiveID, kind, env.CommandID), commands.Fields{})

	var result any
	var err error
	switch {
	case refuse != nil:
		err = refuse
	case decodeErr != nil:
		err = decodeErr
	default:
		result, err = cmd.Execute(c.runCtx, commands.Deps{Spawner: c.cfg.Spawner, Narrator: n, Defaults: c.cfg.Defaults})
	}
	reply := Reply{OK: err == nil, Kind: kind, HiveID: c.cfg.HiveID, JobID: env.JobID, CommandID: env.CommandID}
	if err != nil {
		reply.Error = commands.ToError(err)
	} else {
		reply.Result = result
	}
	body, merr := json.Marshal(reply)
	if merr != nil {
		c.log.Error("encode reply", "kind", kind, "err", merr)
		reply.OK, reply.Result = false, nil
		reply.Error = &commands.Error{Code: commands.CodeInternal, Message: "encode reply: " + merr.Error()}
		body, _ = json.Marshal(reply)
	}

	if max := c.nc.MaxPayload() - replyHeaderRoom; max > 0 && int64(len(body)) > max {
		c.log.Error("reply too large for NATS", "kind", kind, "bytes", len(body), "max_payload", c.nc.MaxPayload())
		reply.OK, reply.Result = false, nil
		reply.Error = &commands.Error{Code: commands.CodeInternal, Message: fmt.Sprintf(
			"the %s result is %d bytes, more than this NATS server's max_payload of %d allows; ask for fewer log_lines", kind, len(body), c.nc.MaxPayload())}
		body, _ = json.Marshal(reply)
	}

	ok := reply.OK
	end := Event{Action: endAction(verb, ok), Level: commands.LevelInfo, OK: &ok, Error: reply.Error}
	end.Human, end.WorkerID, end.PID = summary(kind, reply)
	if !ok {
		end.Level = commands.LevelError
	}
	n.publish(end)
	if subj, serr := subjects.JobResult(env.JobID); serr == nil {
		if perr := c.nc.Publish(subj, body); perr != nil {
			c.log.Warn("publish result", "subject", subj, "err", perr)
		}
	}
	if in.reply != "" {
		msg := &nats.Msg{Subject: in.reply, Data: body}
		if reply.Error != nil {
			// The micro convention, so service-aware clients see an error.
			msg.Header = nats.Header{micro.ErrorCodeHeader: {reply.Error.Code}, micro.ErrorHeader: {headerText(reply.Error.Message)}}
		}
		if err := c.nc.PublishMsg(msg); err != nil {
			c.log.Warn("reply", "kind", kind, "job_id", env.JobID, "err", err)
		}
	}
	c.stats.record(kind, reply.Error)
	attrs := []any{"kind", kind, "job_id", env.JobID, "command_id", env.CommandID, "ok", ok, "took", time.Since(start).Round(time.Microsecond)}
	if reply.Error != nil {
		attrs = append(attrs, "code", reply.Error.Code, "error", reply.Error.Message)
	}
	if reply.Error != nil && reply.Error.Code == commands.CodeInternal {
		c.log.Error("command failed", attrs...)
	} else {
		c.log.Info("command", attrs...)
	}
}

// headerText makes an error message fit a NATS header value: one line, short.
func headerText(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func actionVerb(kind string) string {
	switch kind {
	case commands.KindSpawn:
		return "spawn"
	case commands.KindDelete:
		return "delete"
	case commands.KindList:
		return "list"
	case commands.KindGet:
		return "get"
	}
	return "command"
}

func endAction(verb string, ok bool) string {
	if !ok {
		return "worker_" + verb + "_failed"
	}
	switch verb {
	case "spawn":
		return "worker_spawned"
	case "delete":
		return "worker_deleted"
	case "list":
		return "worker_listed"
	}
	return "worker_got"
}

// summary is the readable sentence of a command's end event.
func summary(kind string, r Reply) (human, workerID string, pid int) {
	if r.Error != nil {
		return fmt.Sprintf("%s failed (%s): %s", kind, r.Error.Code, headerText(r.Error.Message)), "", 0
	}
	switch v := r.Result.(type) {
	case commands.SpawnResult:
		if v.Existing {
			return fmt.Sprintf("Worker %s was already running as pid %d; answered with it.", v.WorkerID, v.PID), v.WorkerID, v.PID
		}
		return fmt.Sprintf("Worker %s is running as pid %d on port %d (waited for: %s).", v.WorkerID, v.PID, v.Port, v.Wait), v.WorkerID, v.PID
	case commands.DeleteResult:
		return fmt.Sprintf("Worker %s (pid %d) stopped after %s in %d ms.", v.WorkerID, v.PID, v.Signal, v.StoppedMS), v.WorkerID, v.PID
	case commands.ListResult:
		return fmt.Sprintf("Hive %s has %d worker(s).", r.HiveID, len(v.Workers)), "", 0
	case commands.GetResult:
		return fmt.Sprintf("Worker %s is running as pid %d.", v.WorkerID, v.PID), v.WorkerID, v.PID
	}
	return kind + " done.", "", 0
}

// Close stops taking commands, waits for those in flight (cancelling them
// when ctx ends first), and flushes what was published. It leaves the
// connection open: the caller drains or closes it.
func (c *Consumer) Close(ctx context.Context) error {
	var errs []error
	c.closeMu.Lock()
	c.closing = true
	c.closeMu.Unlock()
	if c.unknown != nil {
		if err := c.unknown.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("stop catch-all subscription: %w", err))
		}
	}
	if c.svc != nil {
		if err := c.svc.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop service: %w", err))
		}
	}
	done := make(chan struct{})
	go func() { c.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.log.Warn("commands still running at shutdown; interrupting them", "in_flight", len(c.sem))
		c.cancelRun()
		select {
		case <-done:
		case <-time.After(closeAfterCancel):
			errs = append(errs, fmt.Errorf("%d commands still running %s after they were interrupted", len(c.sem), closeAfterCancel))
		}
	}
	c.cancelRun()
	if err := c.nc.FlushTimeout(5 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("flush: %w", err))
	}
	return errors.Join(errs...)
}

// stats are the agent's own counters, shown per endpoint by
// `nats micro stats hive-agent`: micro's built-in counters only see the
// hand-off of each command to its goroutine.
type stats struct {
	mu     sync.Mutex
	byKind map[string]uint64
	byCode map[string]map[string]uint64 // kind -> code -> count
}

func (s *stats) record(kind string, e *commands.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKind[kind]++
	if e != nil {
		if s.byCode[kind] == nil {
			s.byCode[kind] = map[string]uint64{}
		}
		s.byCode[kind][e.Code]++
	}
}

// StatsData is the custom data of one endpoint in the service's stats.
type StatsData struct {
	// Commands and Errors (by code) count this endpoint's commands.
	Commands uint64            `json:"commands"`
	Errors   map[string]uint64 `json:"errors"`
	// InFlight and MaxInFlight are the agent's, across endpoints.
	InFlight    int `json:"in_flight"`
	MaxInFlight int `json:"max_in_flight"`
	// UnknownCommands counts requests to subjects that name no command.
	UnknownCommands uint64 `json:"unknown_commands"`
}

func (s *stats) snapshot(kind string, inFlight, max int) StatsData {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := StatsData{Commands: s.byKind[kind], Errors: map[string]uint64{}, InFlight: inFlight, MaxInFlight: max}
	for code, n := range s.byCode[kind] {
		d.Errors[code] = n
	}
	for k, n := range s.byKind {
		if !slices.Contains(commands.Kinds, k) {
			d.UnknownCommands += n
		}
	}
	return d
}
