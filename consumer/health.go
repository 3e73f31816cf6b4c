package consumer

import (
	"encoding/json"
	"fmt"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/health"
	"github.com/rbee/hive-agent/spawner"
)

// HealthConfig turns on health checks after ready (PROTOCOL v1.2).
type HealthConfig struct {
	// Defaults apply to every worker type that does not set its own.
	Defaults health.Policy
	// Pool and SyncEvery tune the checker (see health.Config).
	Pool int
}

// healthSpawner is what health checking needs of the spawner beyond
// commands.Spawner; *spawner.Spawner has it.
type healthSpawner interface {
	Watched() []spawner.Worker
	SetHealth(pid int, st spawner.State)
}

var _ healthSpawner = (*spawner.Spawner)(nil)

// Events of health checks.
const (
	EventUnhealthy = "unhealthy"
	EventHealthy   = "healthy"
)

// UnhealthyEvent is published on hive.<hive_id>.events.worker.unhealthy
// when a worker's last health_failures checks failed, and (with Failures 0
// and LastError empty) on ...events.worker.healthy when it answers again.
type UnhealthyEvent struct {
	HiveID    string `json:"hive_id"`
	WorkerID  string `json:"worker_id"`
	JobID     string `json:"job_id"`
	PID       int    `json:"pid"`
	Failures  int    `json:"failures"`
	LastError string `json:"last_error,omitempty"`
	// Since is when the failures began (on healthy: when they had begun).
	Since string `json:"since"`
	// Action is what the agent does about it: event or restart.
	Action string `json:"action,omitempty"`
}

// startHealth runs the health checker until the consumer closes.
func (c *Consumer) startHealth() error {
	if err := c.cfg.Health.Defaults.Validate(); err != nil {
		return err
	}
	hs, ok := c.cfg.Spawner.(healthSpawner)
	if !ok {
		return fmt.Errorf("health checks: the spawner cannot list the workers it watches")
	}
	chk, err := health.New(health.Config{
		Workers:  hs.Watched,
		PolicyOf: c.healthPolicy,
		Skip: func(w spawner.Worker) bool {
			switch c.cfg.Spawner.StateOf(w) {
			case spawner.StateStarting, spawner.StateLoading, spawner.StateStopping:
				return true
			}
			return false
		},
		OnResult: func(r health.Result) { c.healthResult(hs, r) },
		Pool:     c.cfg.Health.Pool,
	})
	if err != nil {
		return err
	}
	go chk.Run(c.runCtx)
	return nil
}

// healthPolicy is a worker's policy: its type's keys over the defaults.
func (c *Consumer) healthPolicy(w spawner.Worker) health.Policy {
	p := c.cfg.Health.Defaults
	cat := c.cfg.Catalog
	if cat == nil {
		cat = catalog.Builtin()
	}
	t, ok := cat.Type(string(w.WorkerType))
	if !ok {
		return p
	}
	if t.Health.Interval != nil {
		p.Interval = *t.Health.Interval
	}
	if t.Health.Timeout > 0 {
		p.Timeout = t.Health.Timeout
	}
	if t.Health.Failures > 0 {
		p.Failures = t.Health.Failures
	}
	if t.Health.OnUnhealthy != "" {
		p.OnUnhealthy = t.Health.OnUnhealthy
	}
	return p
}

// healthResult sets the worker's state and publishes the transitions.
func (c *Consumer) healthResult(hs healthSpawner, r health.Result) {
	w := r.Worker
	switch {
	case r.OK:
		hs.SetHealth(w.PID, spawner.StateReady)
	case r.Failures >= r.Policy.Failures:
		hs.SetHealth(w.PID, spawner.StateUnhealthy)
	}
	if r.Turned == "" {
		return
	}
	ev := UnhealthyEvent{HiveID: w.HiveID, WorkerID: w.WorkerID, JobID: w.JobID, PID: w.PID, Failures: r.Failures,
		LastError: r.LastError, Since: commands.FormatTime(r.Since)}
	if r.Turned == health.TurnedHealthy {
		c.log.Info("worker answers its health check again", "worker_id", w.WorkerID, "pid", w.PID)
		c.publishEvent(EventHealthy, ev)
		return
	}
	ev.Action = r.Policy.OnUnhealthy
	c.log.Warn("worker is unhealthy", "worker_id", w.WorkerID, "pid", w.PID, "failures", r.Failures, "last_error", r.LastError, "on_unhealthy", r.Policy.OnUnhealthy)
	c.publishEvent(EventUnhealthy, ev)
	if r.Policy.OnUnhealthy == health.OnUnhealthyRestart {
		c.restartUnhealthy(r)
	}
}

// restartUnhealthy restarts a worker that turned unhealthy through the
// worker.restart command, narrated on its spawning job; it counts against
// the worker's max_restarts.
func (c *Consumer) restartUnhealthy(r health.Result) {
	w := r.Worker
	if w.Restarts >= w.Restart.Max {
		c.log.Warn("unhealthy worker not restarted: it reached its max_restarts", "worker_id", w.WorkerID, "restarts", w.Restarts, "max_restarts", w.Restart.Max)
		j := c.jobs.acquire(w.JobID)
		defer c.jobs.release(j)
		c.narrator(j, w.CommandID).Narrate("worker_unhealthy", commands.LevelError,
			fmt.Sprintf("Worker %s (pid %d) failed %d health checks in a row (last: %s); not restarting it: it was restarted %d time(s), its max_restarts.",
				w.WorkerID, w.PID, r.Failures, r.LastError, w.Restarts), commands.Fields{WorkerID: w.WorkerID, PID: w.PID})
		return
	}
	body, _ := json.Marshal(map[string]string{"job_id": w.JobID, "worker_id": w.WorkerID})
	via := fmt.Sprintf(" from its health check: worker %s (pid %d) failed %d checks in a row (last: %s); restart %d of %d",
		w.WorkerID, w.PID, r.Failures, r.LastError, w.Restarts+1, w.Restart.Max)
	c.runInternal(commands.KindRestart, inbound{data: body, via: via})
}

// runInternal runs a command the agent gives itself: narrated on its job
// like any other, counted by Close's wait, its result only logged (the job
// already has its own).
func (c *Consumer) runInternal(kind string, in inbound) {
	c.closeMu.Lock()
	if c.closing {
		c.closeMu.Unlock()
		return
	}
	c.inflight.Add(1)
	c.closeMu.Unlock()
	go func() {
		defer c.inflight.Done()
		c.record(c.execute(kind, in, c.refusal(kind)))
	}()
}
