package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/subjects"
)

// runCmd is the agent itself: `hive-agent`, or `hive-agent run`. Every
// setting is a flag with an environment variable beside it; a flag given on
// the command line wins. Durations and numbers are read as text and checked
// in config(), so a flag also overrides an environment value that does not
// parse, and every problem is reported at once.
type runCmd struct {
	HiveID        string `name:"hive-id" env:"HIVE_ID" default:"${hive_id}" help:"This hive's id (1-64 of A-Z a-z 0-9 _ -)."`
	NATSListen    string `name:"nats-listen" env:"HIVE_NATS_LISTEN" default:"127.0.0.1:4222" help:"Address of the embedded NATS server (only without --nats-url)."`
	WorkerDir     string `name:"worker-dir" env:"HIVE_WORKER_DIR" help:"Directories (:-separated) searched for worker binaries before PATH."`
	LogDir        string `name:"log-dir" env:"HIVE_LOG_DIR" default:"${log_dir}" help:"Directory for worker logs (one subdirectory per hive)."`
	QueenURL      string `name:"queen-url" env:"HIVE_QUEEN_URL" default:"http://localhost:7833" help:"Queen URL passed to workers whose spawn names none."`
	PortRange     string `name:"port-range" env:"HIVE_PORT_RANGE" default:"9100-9199" help:"Ports chosen for spawns that name none (MIN-MAX)."`
	SpawnWait     string `name:"spawn-wait" env:"HIVE_SPAWN_WAIT" default:"alive" enum:"exec,alive,ready" help:"Default wait of a spawn: exec, alive or ready."`
	AliveWindow   string `name:"alive-window" env:"HIVE_ALIVE_WINDOW" default:"300ms" help:"How long a worker must stay up for wait: alive."`
	ReadyTimeout  string `name:"ready-timeout" env:"HIVE_READY_TIMEOUT" default:"120s" help:"Default bound of wait: ready."`
	MaxInFlight   string `name:"max-in-flight" env:"HIVE_MAX_IN_FLIGHT" default:"32" help:"Commands run at once; beyond it callers get busy."`
	ShutdownWait  string `name:"shutdown-wait" env:"HIVE_SHUTDOWN_WAIT" default:"10s" help:"How long a stop waits for commands in flight."`
	LogFormat     string `name:"log-format" env:"HIVE_LOG_FORMAT" default:"auto" enum:"auto,text,json" help:"Agent log format: auto (colour on a terminal, text otherwise), text or json."`
	LogLevel      string `name:"log-level" env:"HIVE_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Agent log level: debug, info, warn or error."`
	Containment   string `name:"containment" env:"HIVE_CONTAINMENT" default:"auto" enum:"auto,cgroup,process-group" help:"How workers are contained: cgroup (own cgroup v2 group each; fails when the agent cannot create one), process-group, or auto (cgroup where possible)."`
	Catalog       string `name:"catalog" env:"HIVE_CATALOG" type:"path" help:"Worker catalog file (YAML; docs/catalog.md); empty: the built-in rbee types."`
	VRAMSettle    string `name:"vram-settle" env:"HIVE_VRAM_SETTLE" default:"60s" help:"How long what a GPU spawn asked for (min_free_vram_mib) counts against the GPU's free memory while its worker does not use it yet."`
	VRAMRelease   string `name:"vram-release-timeout" env:"HIVE_VRAM_RELEASE_TIMEOUT" default:"15s" help:"How long after a GPU worker ends the agent waits for its processes to leave the GPU before it marks the GPU tainted."`
	MetricsListen string `name:"metrics-listen" env:"HIVE_METRICS_LISTEN" help:"Address (host:port) to serve Prometheus metrics on at /metrics; empty: off."`

	RestartBackoff string `name:"restart-backoff" env:"HIVE_RESTART_BACKOFF" default:"1s" help:"Wait before a failed worker's first restart under restart: on-failure; it doubles with each restart up to 60s."`

	JetStream       string `name:"jetstream" env:"HIVE_JETSTREAM" default:"auto" enum:"auto,on,off" help:"Durable intake and stored results: auto (when the server has JetStream), on (exit 1 without it) or off."`
	JetStreamCreate bool   `name:"jetstream-create" env:"HIVE_JETSTREAM_CREATE" default:"true" negatable:"" help:"Create the streams and the intake consumer when missing (--no-jetstream-create for accounts that may not)."`
	JetStreamDomain string `name:"jetstream-domain" env:"HIVE_JETSTREAM_DOMAIN" help:"JetStream domain of the agent's streams (a leaf node's own; docs/topology.md); empty: the server's."`
	JetStreamDir    string `name:"jetstream-dir" env:"HIVE_JETSTREAM_DIR" default:"${jetstream_dir}" help:"Where the embedded NATS server stores JetStream data (only without --nats-url)."`
	JobsMaxAge      string `name:"jobs-max-age" env:"HIVE_JOBS_MAX_AGE" default:"24h" help:"How long stream HIVE_JOBS keeps narration and results (when it is created)."`
	IntakeAckWait   string `name:"intake-ack-wait" env:"HIVE_INTAKE_ACK_WAIT" default:"30s" help:"How long an intake command may go unacknowledged before it is delivered again (when the consumer is created)."`

	NATS       natsFlags `embed:""`
	configFlag `embed:""`
	// DayTwo: worker state, health after ready, drain (config_day2.go).
	DayTwo dayTwoFlags `embed:""`
}

// Config is every setting of the agent, checked and converted.
type Config struct {
	HiveID       string
	NATS         NATSConfig
	NATSListen   string
	WorkerDirs   []string
	LogDir       string
	QueenURL     string
	PortMin      int
	PortMax      int
	SpawnWait    string
	AliveWindow  time.Duration
	ReadyTimeout time.Duration
	MaxInFlight  int
	ShutdownWait time.Duration
	LogFormat    string
	LogLevel     string
	// Containment is the spawner's containment mode (auto, cgroup, process-group).
	Containment string
	// MetricsListen is where /metrics is served; empty: nowhere.
	MetricsListen string
	// Catalog holds the worker types: the --catalog file's, or the built-in ones.
	Catalog *catalog.Catalog
	// JetStream is auto, on or off; JetStreamCreate whether streams are created.
	JetStream       string
	JetStreamCreate bool
	// JetStreamDomain is the domain of the agent's streams; "" the server's.
	JetStreamDomain string
	// JetStreamDir is the embedded server's store directory.
	JetStreamDir  string
	JobsMaxAge    time.Duration
	IntakeAckWait time.Duration
	// RestartBackoff is the spawner's first restart backoff.
	RestartBackoff time.Duration
	// VRAMSettle and VRAMReleaseTimeout configure the GPU policy.
	VRAMSettle         time.Duration
	VRAMReleaseTimeout time.Duration
	// DayTwo holds the worker state, health and drain settings.
	DayTwo dayTwoConfig
}

// config checks every setting and converts it; it reports every problem
// at once.
func (r *runCmd) config() (Config, error) {
	c := Config{
		HiveID: r.HiveID, NATSListen: r.NATSListen, QueenURL: r.QueenURL, SpawnWait: r.SpawnWait,
		LogFormat: r.LogFormat, LogLevel: r.LogLevel, MetricsListen: r.MetricsListen, Containment: r.Containment,
		JetStream: r.JetStream, JetStreamCreate: r.JetStreamCreate, JetStreamDomain: r.JetStreamDomain,
	}
	var errs []error
	if err := checkDomain(r.JetStreamDomain); err != nil {
		errs = append(errs, err)
	}
	nats, err := r.NATS.config()
	if err != nil {
		errs = append(errs, err)
	}
	c.NATS = nats
	if c.DayTwo, err = r.DayTwo.config(); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		flag, env, val string
		dst            *time.Duration
	}{
		{"alive-window", "HIVE_ALIVE_WINDOW", r.AliveWindow, &c.AliveWindow},
		{"ready-timeout", "HIVE_READY_TIMEOUT", r.ReadyTimeout, &c.ReadyTimeout},
		{"shutdown-wait", "HIVE_SHUTDOWN_WAIT", r.ShutdownWait, &c.ShutdownWait},
		{"restart-backoff", "HIVE_RESTART_BACKOFF", r.RestartBackoff, &c.RestartBackoff},
		{"jobs-max-age", "HIVE_JOBS_MAX_AGE", r.JobsMaxAge, &c.JobsMaxAge},
		{"intake-ack-wait", "HIVE_INTAKE_ACK_WAIT", r.IntakeAckWait, &c.IntakeAckWait},
		{"vram-settle", "HIVE_VRAM_SETTLE", r.VRAMSettle, &c.VRAMSettle},
		{"vram-release-timeout", "HIVE_VRAM_RELEASE_TIMEOUT", r.VRAMRelease, &c.VRAMReleaseTimeout},
	} {
		if *d.dst, err = positiveDuration(d.val); err != nil {
			errs = append(errs, fmt.Errorf("--%s (%s) %q: %w", d.flag, d.env, d.val, err))
		}
	}
	if c.MaxInFlight, err = strconv.Atoi(r.MaxInFlight); err != nil || c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("--max-in-flight (HIVE_MAX_IN_FLIGHT) %q: want a whole number of at least 1", r.MaxInFlight))
	}
	if err := subjects.ValidToken(c.HiveID); err != nil {
		errs = append(errs, fmt.Errorf("--hive-id (HIVE_ID) %q: %w", c.HiveID, err))
	}
	for _, d := range filepath.SplitList(r.WorkerDir) {
		if d == "" {
			continue
		}
		if abs, err := filepath.Abs(d); err == nil {
			d = abs
		}
		c.WorkerDirs = append(c.WorkerDirs, d)
	}
	if r.LogDir == "" {
		errs = append(errs, errors.New("--log-dir (HIVE_LOG_DIR): must be set (there is no home directory to default to)"))
	} else if c.LogDir, err = filepath.Abs(r.LogDir); err != nil {
		// Log paths go into workers' markers and must mean the same after
		// the agent restarts elsewhere.
		errs = append(errs, fmt.Errorf("--log-dir (HIVE_LOG_DIR) %q: %w", r.LogDir, err))
	}
	if c.JobsMaxAge > 0 && c.JobsMaxAge < time.Second || c.IntakeAckWait > 0 && c.IntakeAckWait < time.Second {
		errs = append(errs, errors.New("--jobs-max-age and --intake-ack-wait: want at least 1s"))
	}
	if r.JetStreamDir != "" {
		if c.JetStreamDir, err = filepath.Abs(r.JetStreamDir); err != nil {
			errs = append(errs, fmt.Errorf("--jetstream-dir (HIVE_JETSTREAM_DIR) %q: %w", r.JetStreamDir, err))
		}
	} else if c.NATS.URL == "" && c.JetStream != "off" {
		errs = append(errs, errors.New("--jetstream-dir (HIVE_JETSTREAM_DIR): must be set for the embedded server's JetStream (there is no home directory to default to), or use --jetstream off"))
	}
	c.Catalog = catalog.Builtin()
	if r.Catalog != "" {
		// Each problem of the file on a line of its own, with file:line:col and field.
		if c.Catalog, err = catalog.Load(r.Catalog); err != nil {
			errs = append(errs, fmt.Errorf("--catalog (HIVE_CATALOG):\n%w", err))
		}
	}
	if c.PortMin, c.PortMax, err = portRange(r.PortRange); err != nil {
		errs = append(errs, fmt.Errorf("--port-range (HIVE_PORT_RANGE) %q: %w", r.PortRange, err))
	}
	return c, errors.Join(errs...)
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("want a positive duration such as 300ms or 2m")
	}
	return d, nil
}

func portRange(s string) (min, max int, err error) {
	lo, hi, ok := strings.Cut(s, "-")
	min, err1 := strconv.Atoi(strings.TrimSpace(lo))
	max, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, errors.New("want MIN-MAX, e.g. 9100-9199")
	}
	if min < 1024 || max > 65535 || min > max {
		return 0, 0, errors.New("want 1024 <= MIN <= MAX <= 65535")
	}
	return min, max, nil
}

func logLevel(s string) slog.Level {
	var level slog.Level
	level.UnmarshalText([]byte(s)) // the flag's enum admits only valid levels
	return level
}

// defaultHiveID is the host name, cut at its first dot and to a valid token.
func defaultHiveID() string {
	h, _ := os.Hostname()
	return hiveIDFromHost(h)
}

func hiveIDFromHost(h string) string {
	h, _, _ = strings.Cut(h, ".")
	b := []byte(h)
	for i, c := range b {
		if subjects.ValidToken(string(c)) != nil {
			b[i] = '_'
		}
	}
	if len(b) > subjects.MaxTokenLen {
		b = b[:subjects.MaxTokenLen]
	}
	if len(b) == 0 {
		return "hive"
	}
	return string(b)
}

// checkDomain checks a --jetstream-domain (HIVE_JETSTREAM_DOMAIN): empty,
// or a subject token (it becomes part of $JS.<domain>.API and of the
// subjects results are stored through).
func checkDomain(d string) error {
	if d == "" {
		return nil
	}
	if err := subjects.ValidToken(d); err != nil {
		return fmt.Errorf("--jetstream-domain (HIVE_JETSTREAM_DOMAIN) %q: %w", d, err)
	}
	return nil
}
