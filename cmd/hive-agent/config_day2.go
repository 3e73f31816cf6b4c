package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rbee/hive-agent/health"
)

// dayTwoFlags are the agent's settings for worker state, health after
// ready and drain (PROTOCOL v1.2).
type dayTwoFlags struct {
	ExitedTTL      string `name:"exited-ttl" env:"HIVE_EXITED_TTL" default:"15m" help:"How long ls -a (list all) shows a worker after it exited."`
	HealthInterval string `name:"health-interval" env:"HIVE_HEALTH_INTERVAL" default:"10s" help:"How often a running worker's health URL is checked after ready (a type's health_interval wins); 0 turns it off."`
	HealthTimeout  string `name:"health-timeout" env:"HIVE_HEALTH_TIMEOUT" default:"2s" help:"How long one health check waits for its answer (a type's health_timeout wins)."`
	HealthFailures string `name:"health-failures" env:"HIVE_HEALTH_FAILURES" default:"3" help:"Failed checks in a row that make a worker unhealthy (a type's health_failures wins)."`
	OnUnhealthy    string `name:"on-unhealthy" env:"HIVE_ON_UNHEALTHY" default:"event" enum:"event,restart" help:"What an unhealthy worker gets: event, or restart (counts against max_restarts; a type's on_unhealthy wins)."`
	StateDir       string `name:"state-dir" env:"HIVE_STATE_DIR" default:"${state_dir}" help:"Where the agent keeps what must survive its restart (the drain state, tainted GPUs)."`
}

// dayTwoConfig is dayTwoFlags checked and converted.
type dayTwoConfig struct {
	ExitedTTL time.Duration
	Health    health.Policy
	StateDir  string
}

// DrainFile is where the drain state of hive is kept.
func (c dayTwoConfig) DrainFile(hive string) string {
	if c.StateDir == "" {
		return ""
	}
	return filepath.Join(c.StateDir, "drain", hive+".json")
}

// TaintFile is where the tainted GPUs of hive are kept.
func (c dayTwoConfig) TaintFile(hive string) string {
	if c.StateDir == "" {
		return ""
	}
	return filepath.Join(c.StateDir, "gpu", hive+"-tainted.json")
}

func (f dayTwoFlags) config() (dayTwoConfig, error) {
	var c dayTwoConfig
	var errs []error
	var err error
	if c.ExitedTTL, err = positiveDuration(f.ExitedTTL); err != nil {
		errs = append(errs, fmt.Errorf("--exited-ttl (HIVE_EXITED_TTL) %q: %w", f.ExitedTTL, err))
	}
	p := health.Policy{OnUnhealthy: f.OnUnhealthy}
	if p.Interval, err = time.ParseDuration(f.HealthInterval); err != nil || p.Interval < 0 {
		errs = append(errs, fmt.Errorf("--health-interval (HIVE_HEALTH_INTERVAL) %q: want 0 (off) or a duration such as 10s", f.HealthInterval))
	}
	if p.Timeout, err = positiveDuration(f.HealthTimeout); err != nil {
		errs = append(errs, fmt.Errorf("--health-timeout (HIVE_HEALTH_TIMEOUT) %q: %w", f.HealthTimeout, err))
	}
	if p.Failures, err = strconv.Atoi(f.HealthFailures); err != nil || p.Failures < 1 {
		errs = append(errs, fmt.Errorf("--health-failures (HIVE_HEALTH_FAILURES) %q: want a whole number of at least 1", f.HealthFailures))
	}
	c.Health = p
	if f.StateDir != "" {
		if c.StateDir, err = filepath.Abs(f.StateDir); err != nil {
			errs = append(errs, fmt.Errorf("--state-dir (HIVE_STATE_DIR) %q: %w", f.StateDir, err))
		}
	}
	return c, errors.Join(errs...)
}

// defaultStateDir is where the agent keeps what must survive it: the
// parent of the default JetStream directory ($XDG_STATE_HOME/hive-agent on
// Linux, ~/Library/Application Support/hive-agent on macOS,
// %LOCALAPPDATA%\hive-agent on Windows; dirs.go).
func defaultStateDir() string {
	if d := defaultJetStreamDir(); d != "" {
		return filepath.Dir(d)
	}
	return ""
}
