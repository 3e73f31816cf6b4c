package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
)

// Config is every setting of the agent. Each is a flag with an environment
// variable beside it; a flag given on the command line wins.
type Config struct {
	HiveID       string
	NATSURL      string
	NATSCreds    string
	NATSCA       string
	NATSCert     string
	NATSKey      string
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
	ShowVersion  bool
}

// setting is one flag and its environment variable.
type setting struct {
	flag, env, def, usage string
	set                   func(string) error
}

func parseConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (Config, error) {
	var c Config
	var portRange, workerDirs string
	settings := []setting{
		{"hive-id", "HIVE_ID", defaultHiveID(), "this hive's id (1-64 of A-Z a-z 0-9 _ -)", str(&c.HiveID)},
		{"nats-url", "NATS_URL", "", "NATS server URL(s), comma-separated; empty starts an embedded server", str(&c.NATSURL)},
		{"nats-creds", "NATS_CREDS", "", "NATS credentials file (JWT + nkey seed)", str(&c.NATSCreds)},
		{"nats-ca", "NATS_CA", "", "CA certificate (PEM) to verify the NATS server", str(&c.NATSCA)},
		{"nats-cert", "NATS_CERT", "", "client certificate (PEM) for NATS TLS", str(&c.NATSCert)},
		{"nats-key", "NATS_KEY", "", "client key (PEM) for NATS TLS", str(&c.NATSKey)},
		{"nats-listen", "HIVE_NATS_LISTEN", "127.0.0.1:4222", "address of the embedded NATS server (only without --nats-url)", str(&c.NATSListen)},
		{"worker-dir", "HIVE_WORKER_DIR", "", "directories (:-separated) searched for worker binaries before PATH", str(&workerDirs)},
		{"log-dir", "HIVE_LOG_DIR", defaultLogDir(), "directory for worker logs (one subdirectory per hive)", str(&c.LogDir)},
		{"queen-url", "HIVE_QUEEN_URL", "http://localhost:7833", "queen URL passed to workers that name none", str(&c.QueenURL)},
		{"port-range", "HIVE_PORT_RANGE", "9100-9199", "ports chosen for spawns that name none", str(&portRange)},
		{"spawn-wait", "HIVE_SPAWN_WAIT", commands.WaitAlive, "default wait of a spawn: exec, alive or ready", str(&c.SpawnWait)},
		{"alive-window", "HIVE_ALIVE_WINDOW", "300ms", "how long a worker must stay up for wait: alive", dur(&c.AliveWindow)},
		{"ready-timeout", "HIVE_READY_TIMEOUT", "120s", "default bound of wait: ready", dur(&c.ReadyTimeout)},
		{"max-in-flight", "HIVE_MAX_IN_FLIGHT", "32", "commands run at once; beyond it callers get busy", integer(&c.MaxInFlight)},
		{"shutdown-wait", "HIVE_SHUTDOWN_WAIT", "10s", "how long a stop waits for commands in flight", dur(&c.ShutdownWait)},
		{"log-format", "HIVE_LOG_FORMAT", "auto", "agent log format: auto (color on a terminal, text otherwise), text or json", str(&c.LogFormat)},
		{"log-level", "HIVE_LOG_LEVEL", "info", "agent log level: debug, info, warn, error", str(&c.LogLevel)},
	}
	fs := flag.NewFlagSet("hive-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.ShowVersion, "version", false, "print the version and exit")
	var errs []error
	envErrs := map[string]error{} // by flag: a flag given on the command line overrides them
	for _, s := range settings {
		def := s.def
		if v, ok := lookupEnv(s.env); ok {
			def = v
		}
		if err := s.set(def); err != nil {
			envErrs[s.flag] = fmt.Errorf("%s=%q: %w", s.env, def, err)
		}
		fs.Func(s.flag, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def), s.set)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	fs.Visit(func(f *flag.Flag) { delete(envErrs, f.Name) })
	for _, s := range settings {
		if err := envErrs[s.flag]; err != nil {
			errs = append(errs, err)
		}
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	if workerDirs != "" {
		for _, d := range filepath.SplitList(workerDirs) {
			if d == "" {
				continue
			}
			if abs, err := filepath.Abs(d); err == nil {
				d = abs
			}
			c.WorkerDirs = append(c.WorkerDirs, d)
		}
	}
	if c.LogDir != "" {
		// Log paths go into workers' markers and must mean the same after
		// the agent restarts elsewhere.
		if abs, err := filepath.Abs(c.LogDir); err == nil {
			c.LogDir = abs
		}
	}
	min, max, ok := strings.Cut(portRange, "-")
	var err1, err2 error
	c.PortMin, err1 = strconv.Atoi(strings.TrimSpace(min))
	c.PortMax, err2 = strconv.Atoi(strings.TrimSpace(max))
	if !ok || err1 != nil || err2 != nil {
		errs = append(errs, fmt.Errorf("port range %q: want MIN-MAX, e.g. 9100-9199", portRange))
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if err := subjects.ValidToken(c.HiveID); err != nil {
		errs = append(errs, fmt.Errorf("hive id %q: %w", c.HiveID, err))
	}
	switch c.SpawnWait {
	case commands.WaitExec, commands.WaitAlive, commands.WaitReady:
	default:
		errs = append(errs, fmt.Errorf("spawn wait %q: want exec, alive or ready", c.SpawnWait))
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMin > c.PortMax {
		errs = append(errs, fmt.Errorf("port range %d-%d: want 1024 <= MIN <= MAX <= 65535", c.PortMin, c.PortMax))
	}
	if c.LogDir == "" {
		errs = append(errs, errors.New("log dir: must be set (no home directory to default to)"))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max in flight %d: must be at least 1", c.MaxInFlight))
	}
	if (c.NATSCert == "") != (c.NATSKey == "") {
		errs = append(errs, errors.New("nats-cert and nats-key go together"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel))
	}
	for name, path := range map[string]string{"nats-creds": c.NATSCreds, "nats-ca": c.NATSCA, "nats-cert": c.NATSCert, "nats-key": c.NATSKey} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log format %q: want auto, text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

func str(p *string) func(string) error { return func(s string) error { *p = s; return nil } }

func dur(p *time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 300ms or 2m")
		}
		*p = d
		return nil
	}
}

func integer(p *int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		*p = n
		return nil
	}
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

// defaultLogDir is $XDG_STATE_HOME/hive-agent/logs, or ~/.local/state/hive-agent/logs.
func defaultLogDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "hive-agent", "logs")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".local", "state", "hive-agent", "logs")
}
