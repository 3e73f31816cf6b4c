// Package consumer is hive-agent's NATS side: a micro service whose
// endpoints receive worker commands, run them concurrently up to a limit,
// and publish the outcome as the reply, on job.<job_id>.result, and as
// narration events on job.<job_id>.narration.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/metrics"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
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
	// Catalog holds the worker types spawns may name; nil: the built-in ones.
	Catalog *catalog.Catalog
	// MaxInFlight bounds the commands run at once; beyond it callers get busy.
	MaxInFlight int
	// RepublishWindow is how far back before a lost connection was noticed
	// results are published again after the reconnect; default
	// RepublishWindow.
	RepublishWindow time.Duration
	// RepublishMaxBytes bounds what the republish window keeps; when it is
	// full, new commands answer busy until it drains. Default
	// DefaultRepublishMaxBytes.
	RepublishMaxBytes int
	// HeartbeatInterval is how often the heartbeat event is published
	// (DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// Metadata is added to the service's metadata (hive_id, version, host
	// and pid are always there), e.g. the devices and worker types, which
	// `hive-agent hives` shows.
	Metadata map[string]string
	// Metrics, when set, counts commands and worker exits for Prometheus.
	Metrics *metrics.Metrics
	// GPU, when set, is the GPU memory policy (admission, release checks;
	// see gpu.go); its live figures go into the stats.
	GPU    *commands.GPUPolicy
	Logger *slog.Logger
	// JetStream, when set, adds durable intake and stored outcomes
	// (docs/intake.md); nil serves request/reply only.
	JetStream *JetStreamConfig
	// Health, when set, checks running workers after ready (health.go).
	Health *HealthConfig
	// DrainFile, when set, keeps the drain state across restarts (drain.go).
	DrainFile string
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
	if c.RepublishWindow == 0 {
		c.RepublishWindow = RepublishWindow
	}
	if c.RepublishMaxBytes == 0 {
		c.RepublishMaxBytes = DefaultRepublishMaxBytes
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.JetStream != nil {
		c.JetStream.Streams.setDefaults()
		if c.JetStream.MaxInFlight == 0 {
			c.JetStream.MaxInFlight = max(1, c.MaxInFlight/2)
		}
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
	if c.RepublishMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("republish max bytes %d: must not be negative", c.RepublishMaxBytes))
	}
	if c.RepublishWindow < 0 {
		errs = append(errs, fmt.Errorf("republish window %s: must not be negative", c.RepublishWindow))
	}
	if j := c.JetStream; j != nil {
		if j.JS == nil {
			errs = append(errs, errors.New("jetstream: JS must be set"))
		}
		if j.MaxInFlight < 1 || j.MaxInFlight > c.MaxInFlight {
			errs = append(errs, fmt.Errorf("jetstream max in flight %d: want 1-%d (the consumer's limit)", j.MaxInFlight, c.MaxInFlight))
		}
		if err := j.Streams.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Consumer serves one hive's worker commands over NATS.
type Consumer struct {
	cfg     Config
	nc      *nats.Conn
	log     *slog.Logger
	svcMu   sync.Mutex // guards svc, which a drain registers anew (service.go)
	svc     micro.Service
	unknown *nats.Subscription
	drain   drainState
	// instance is the micro service id once started; connection callbacks read it.
	instance atomic.Pointer[string]
	out      *outbox
	intake   *intake // nil without JetStream
	beat     *heartbeat
	// liveIntake is intake for the spawner's callbacks, set once it runs.
	liveIntake atomic.Pointer[intake]

	// adm admits every command: the in-flight limit and Close's wait.
	adm *admission
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
		out: newOutbox(nc, cfg.Logger.With("hive_id", cfg.HiveID), cfg.RepublishWindow, cfg.RepublishMaxBytes),
		adm: newAdmission(cfg.MaxInFlight), runCtx: ctx, cancelRun: cancel,
		held: map[string]*job{}, stats: stats{byKind: map[string]uint64{}, byCode: map[string]map[string]uint64{}},
	}, nil
}

// Start registers the micro service and its endpoints, then publishes the
// inventory with reason "start".
func (c *Consumer) Start(ctx context.Context) error {
	group, err := subjects.WorkerCommandPrefix(c.cfg.HiveID)
	if err != nil {
		return err
	}
	if err := c.loadDrain(); err != nil {
		return err
	}
	svc, err := c.addService()
	if err != nil {
		return err
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
	c.svcMu.Lock()
	c.svc = svc
	c.svcMu.Unlock()
	// Subscriptions are sent asynchronously; once Start returns the agent
	// must be reachable, so wait for the server to have them all.
	if err := c.nc.FlushTimeout(10 * time.Second); err != nil {
		return errors.Join(fmt.Errorf("flush subscriptions: %w", err), svc.Stop())
	}
	id := svc.Info().ID
	c.instance.Store(&id)
	c.log.Info("serving worker commands", "subjects", group+".{"+strings.Join(subjects.Commands, ",")+"}",
		"max_in_flight", c.cfg.MaxInFlight, "service_id", id)
	if c.cfg.JetStream != nil {
		if err := c.startIntake(ctx); err != nil {
			if c.cfg.JetStream.Required {
				err = errors.Join(fmt.Errorf("durable intake: %w", err), svc.Stop(), c.unknown.Unsubscribe())
				c.svc, c.unknown = nil, nil
				return err
			}
			if errors.Is(err, ErrNoJetStream) {
				c.log.Info("durable intake and stored results are off: the NATS server has no JetStream; request/reply works as before")
			} else {
				c.log.Error("durable intake and stored results are off; request/reply works as before", "err", err)
			}
		}
	}
	c.publishInventory(ctx, InventoryStart)
	if c.cfg.Health != nil {
		if err := c.startHealth(); err != nil {
			return err
		}
	}
	c.startHeartbeat()
	c.resumeDrainDeadline()
	return nil
}

// metadata is the service's micro metadata: FindPeers reads hive_id, and
// host and pid name an agent that holds a hive id another wants.
func metadata(hiveID, version string, extra map[string]string) map[string]string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	m := maps.Clone(extra)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, map[string]string{"hive_id": hiveID, "version": version, "host": host, "pid": strconv.Itoa(os.Getpid())})
	return m
}

// inbound is what a command needs of its request message. It is copied
// out before the handler returns: micro reads its request's state after the
// handler returns, so a micro.Request must not be touched from another
// goroutine; replies go out through the connection instead.
type inbound struct {
	subject, reply string
	data           []byte

	// What the intake adds; zero for request/reply.
	// via is appended to the start event's sentence (where the command came from).
	via string
	// afterSeq, when set, is the job's last stored narration seq: a
	// redelivered command continues its job's numbering.
	afterSeq uint64
	// jobID and commandID, when set, replace the ids of a body that cannot
	// be decoded (the intake's derived ones, see idsOf).
	jobID, commandID string
	// redelivered is true for an intake command delivered again after the
	// agent stopped before storing its result (commands.Deps.Redelivered).
	redelivered bool
	// after, when set, sees the command's outcome before it is published.
	after func(result any, err error) (any, error)
}

// dispatch hands each command to its own goroutine so a slow command never
// holds up another, and answers busy beyond the in-flight limit.
func (c *Consumer) dispatch(kind string, in inbound) {
	// Messages already on their way when Close stopped the subscriptions
	// still arrive; they are answered, not run, so Close's wait stays valid.
	err := c.adm.try()
	if errors.Is(err, errStopping) {
		c.run(kind, in, &wire.Error{Code: wire.CodeBusy,
			Message: fmt.Sprintf("hive %s is stopping; send the command again once it is back", c.cfg.HiveID)})
		return
	}
	if !c.out.room() {
		if err == nil {
			c.adm.leave(true)
		}
		c.run(kind, in, &wire.Error{Code: wire.CodeBusy,
			Message: fmt.Sprintf("hive %s keeps %s of results it may have to publish again after a reconnect, its limit; retry shortly", c.cfg.HiveID, byteSize(c.cfg.RepublishMaxBytes))})
		return
	}
	if err != nil {
		c.run(kind, in, &wire.Error{Code: wire.CodeBusy,
			Message: fmt.Sprintf("hive %s is running %d commands, its limit; retry shortly", c.cfg.HiveID, c.cfg.MaxInFlight)})
		return
	}
	go func() {
		defer c.adm.leave(true)
		c.run(kind, in, c.refusal(kind))
	}()
}

// Close stops taking commands, waits for those in flight (cancelling them
// when ctx ends first), and flushes what was published. It leaves the
// connection open: the caller drains or closes it.
func (c *Consumer) Close(ctx context.Context) error {
	var errs []error
	done := c.adm.close()
	if c.unknown != nil {
		if err := c.unknown.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("stop catch-all subscription: %w", err))
		}
	}
	c.stopHeartbeat()
	c.svcMu.Lock()
	if c.svc != nil {
		if err := c.svc.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop service: %w", err))
		}
	}
	c.svcMu.Unlock()
	if c.intake != nil {
		c.intake.stop()
		defer c.intake.finish()
	}
	select {
	case <-done:
	case <-ctx.Done():
		c.log.Warn("commands still running at shutdown; interrupting them", "in_flight", c.adm.inFlight())
		c.cancelRun()
		select {
		case <-done:
		case <-time.After(closeAfterCancel):
			errs = append(errs, fmt.Errorf("%d commands still running %s after they were interrupted", c.adm.inFlight(), closeAfterCancel))
		}
	}
	c.cancelRun()
	if err := c.nc.FlushTimeout(5 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("flush: %w", err))
	}
	return errors.Join(errs...)
}
