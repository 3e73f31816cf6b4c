package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/gpu"
	"github.com/rbee/hive-agent/spawner"
)

// JetStream modes.
const (
	JetStreamAuto = "auto" // durable intake and stored results when the server has JetStream
	JetStreamOn   = "on"   // required: the agent does not start without it
	JetStreamOff  = "off"
)

// Config is every setting of an agent. cmd/hive-agent fills it from its
// flags; tests and tools fill it directly.
type Config struct {
	HiveID  string
	Version string
	// Logger is where the agent logs; nil: slog.Default().
	Logger *slog.Logger

	// NATSURL is the server (comma-separated URLs); empty starts an
	// embedded server listening on NATSListen, with JetStream stored in
	// JetStreamDir unless JetStream is off.
	NATSURL    string
	NATSListen string
	// NATSOptions come after the agent's own connection options:
	// credentials, TLS, or (tests) other reconnect waits.
	NATSOptions []nats.Option
	// PingInterval and MaxPingsOut are the connection's keep-alive.
	PingInterval time.Duration
	MaxPingsOut  int

	// JetStream is auto (the default), on or off; JetStreamCreate whether
	// missing streams and the intake consumer are created.
	JetStream       string
	JetStreamCreate bool
	JetStreamDir    string
	// JetStreamDomain is the domain of the agent's streams (a leaf node's
	// own, docs/topology.md); empty: the server's.
	JetStreamDomain string
	JobsMaxAge      time.Duration
	IntakeAckWait   time.Duration

	WorkerDirs       []string
	LogDir           string
	PortMin, PortMax int
	// Containment is the spawner's containment mode (auto, cgroup, process-group).
	Containment string
	// Devices probes the machine's GPUs; the zero value reads the real ones.
	Devices spawner.DeviceProbe
	// RestartBackoff is the wait before a failed worker's first restart; 0: the spawner's default.
	RestartBackoff time.Duration
	// ExitedTTL is how long list all shows a worker after it exited; 0: the spawner's default.
	ExitedTTL time.Duration
	// GPU configures the GPU memory policy.
	GPU GPUConfig
	// Health, when set, checks running workers' health after ready; nil: no checks.
	Health *consumer.HealthConfig
	// DrainFile is where the drain state is kept across restarts; empty: nowhere.
	DrainFile string

	// Defaults are what a command falls back on.
	Defaults    commands.Defaults
	MaxInFlight int
	// Catalog holds the worker types; nil: the built-in ones.
	Catalog *catalog.Catalog
	// MetricsListen is where /metrics is served; empty: nowhere.
	MetricsListen string
	// ShutdownWait bounds Run's wait for commands in flight once its context ends.
	ShutdownWait time.Duration

	// SkipPeerCheck starts the agent without claiming its hive id and
	// even when another agent serves it (tests of what two such agents do).
	SkipPeerCheck bool
	// Ready, when set, is called once the agent serves, with the URL it
	// connected to (cmd/hive-agent logs how to try it).
	Ready func(url string)
	// OnDisconnect and OnReconnect, when set, run after the consumer
	// heard of a lost or regained connection.
	OnDisconnect func(error)
	OnReconnect  func()
	// Consumer, when set, changes the consumer's configuration before the
	// consumer is made (tests and tools; it gets the agent's connection).
	Consumer func(*nats.Conn, *consumer.Config)
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.JetStream == "" {
		c.JetStream = JetStreamAuto
	}
	if c.NATSListen == "" {
		c.NATSListen = "127.0.0.1:4222"
	}
	if c.PingInterval == 0 {
		c.PingInterval = 4 * time.Second
	}
	if c.MaxPingsOut == 0 {
		c.MaxPingsOut = 2
	}
	if c.ShutdownWait == 0 {
		c.ShutdownWait = 10 * time.Second
	}
	if c.Catalog == nil {
		c.Catalog = catalog.Builtin()
	}
}

// Validate reports every setting the agent cannot start with.
func (c *Config) Validate() error {
	var errs []error
	if c.HiveID == "" {
		errs = append(errs, errors.New("hive id: required"))
	}
	switch c.JetStream {
	case JetStreamAuto, JetStreamOn, JetStreamOff:
	default:
		errs = append(errs, fmt.Errorf("jetstream %q: want auto, on or off", c.JetStream))
	}
	if c.LogDir == "" {
		errs = append(errs, errors.New("log dir: required"))
	}
	return errors.Join(errs...)
}

// GPUConfig configures the agent's GPU memory policy (docs/gpus.md).
type GPUConfig struct {
	// Off leaves the agent without a policy: every spawn is admitted and
	// no release is checked (tests that are not about GPUs).
	Off bool
	// Source reads nvidia-smi; nil: one with its defaults.
	Source *gpu.Source
	// Settle and ReleaseTimeout are --vram-settle and --vram-release-timeout.
	Settle, ReleaseTimeout time.Duration
	// Poll and Recheck are how often a release check and a taint re-check
	// ask nvidia-smi; 0: the policy's defaults.
	Poll, Recheck time.Duration
	// TaintFile keeps the tainted GPUs across restarts; empty: in memory only.
	TaintFile string
}
