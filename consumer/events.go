package consumer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/metrics"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// RestartPending publishes what the agent does with a restart an earlier
// agent left pending, and logs it. Wire it to
// spawner.Config.OnPendingRestart.
func (c *Consumer) RestartPending(p spawner.PendingRestart) {
	w := p.Worker
	ev := wire.PendingRestartEvent{HiveID: w.HiveID, WorkerID: w.WorkerID, JobID: w.JobID, ModelID: w.ModelID, Port: w.Port,
		Restart: w.Restarts, MaxRestarts: w.Restart.Max}
	if !p.Due.IsZero() {
		ev.DueAt = wire.Time{Time: p.Due}
		in := max(0, time.Until(p.Due).Milliseconds())
		ev.RestartInMS = &in
	}
	kind := subjects.EventRestartResumed
	if p.Abandoned != nil {
		kind, ev.Reason = subjects.EventRestartAbandoned, p.Abandoned.Error()
	}
	c.publishEvent(kind, ev)
}

var _ commands.Events = (*Consumer)(nil)

// stoppingFlush bounds the wait for the server to have the stopping event
// before the signal goes out.
const stoppingFlush = time.Second

// WorkerStopping publishes the stopping event of a worker a delete is
// about to signal. It waits (up to a second, and only while connected)
// until the server has it, so the event is on its way before the worker
// sees the signal.
func (c *Consumer) WorkerStopping(w spawner.Worker, byJobID string, grace time.Duration) {
	c.publishEvent(subjects.EventStopping, wire.StoppingEvent{HiveID: w.HiveID, WorkerID: w.WorkerID, JobID: w.JobID,
		PID: w.PID, ByJobID: byJobID, GraceMS: grace.Milliseconds()})
	if c.nc.IsConnected() {
		if err := c.nc.FlushTimeout(stoppingFlush); err != nil {
			c.log.Warn("flush stopping event", "worker_id", w.WorkerID, "err", err)
		}
	}
}

// ExitLogLines is how many log lines an exited event carries.
const ExitLogLines = 20

func workerKey(w spawner.Worker) string {
	return strconv.Itoa(w.PID) + "/" + strconv.FormatInt(w.StartTime, 10)
}

// WorkerStarted publishes the started event of a worker this agent just
// started, narrates worker_process_started on its job, and keeps the job's
// narration sequence for the exit. Wire it to spawner.Config.OnStart.
func (c *Consumer) WorkerStarted(w spawner.Worker) {
	j := c.jobs.acquire(w.JobID)
	c.heldMu.Lock()
	c.held[workerKey(w)] = j
	c.heldMu.Unlock()
	// Narrated here, before the spawner can report the worker's exit, so
	// worker_process_started always precedes worker_exited on the job.
	n := c.narrator(j, w.CommandID)
	if w.Restarts > 0 {
		n.Narrate("worker_restarted", wire.LevelWarn,
			fmt.Sprintf("Restarted worker %s (restart %d of %d) as pid %d on port %d.", w.WorkerID, w.Restarts, w.Restart.Max, w.PID, w.Port),
			commands.Fields{WorkerID: w.WorkerID, PID: w.PID})
	} else {
		n.Narrate("worker_process_started", wire.LevelInfo,
			fmt.Sprintf("Started worker %s as pid %d on port %d; its output goes to %s.", w.WorkerID, w.PID, w.Port, w.LogPath),
			commands.Fields{WorkerID: w.WorkerID, PID: w.PID})
	}
	c.publishEvent(subjects.EventStarted, wire.StartedEvent{
		HiveID: w.HiveID, WorkerID: w.WorkerID, JobID: w.JobID, PID: w.PID, Port: w.Port,
		ModelID: w.ModelID, Device: w.Device, WorkerType: string(w.WorkerType),
		StartedAt: wire.Time{Time: w.StartedAt()}, Restart: w.Restarts,
	})
	if i := c.liveIntake.Load(); i != nil {
		i.workerStarted(w)
	}
}

// WorkerExited publishes the exited event of a worker this agent started
// or adopted, and narrates the end of one it started on the spawning job.
// Wire it to spawner.Config.OnExit.
func (c *Consumer) WorkerExited(w spawner.Worker, e spawner.Exit) {
	tail, err := c.cfg.Spawner.WorkerLogTail(w, ExitLogLines)
	if err != nil {
		c.log.Warn("read worker log", "worker_id", w.WorkerID, "err", err)
		tail = []string{}
	}
	ev := wire.ExitedEvent{HiveID: w.HiveID, WorkerID: w.WorkerID, JobID: w.JobID, PID: w.PID,
		Signal: e.Signal, RanMS: e.RanMS, LogTail: tail, LeftoversStopped: e.Leftovers, Adopted: e.Adopted,
		Restart: e.Restart, RestartInMS: e.RestartIn.Milliseconds()}
	level := wire.LevelInfo
	if e.Signal == "" && e.Code >= 0 {
		code := e.Code
		ev.ExitCode = &code
	}
	if e.Signal != "" || e.Code != 0 {
		level = wire.LevelWarn
	}
	c.log.Info("worker exited", "worker_id", w.WorkerID, "pid", w.PID, "exit_code", e.Code, "signal", e.Signal, "ran_ms", e.RanMS, "adopted", e.Adopted)
	c.publishEvent(subjects.EventExited, ev)
	c.cfg.Metrics.WorkerExited(exitCause(e))
	c.checkGPURelease(w)
	if e.Adopted {
		// Its job belongs to an earlier run of the agent, whose narration
		// sequence is gone: numbering from 1 again would break the job's order.
		return
	}

	c.heldMu.Lock()
	j, ok := c.held[workerKey(w)]
	delete(c.held, workerKey(w))
	c.heldMu.Unlock()
	if !ok {
		j = c.jobs.acquire(w.JobID)
	}
	defer c.jobs.release(j)
	n := c.narrator(j, w.CommandID)
	human := fmt.Sprintf("Worker %s (pid %d) %s after %d ms.", w.WorkerID, w.PID, e, e.RanMS)
	if e.Leftovers > 0 {
		human += fmt.Sprintf(" It left %d process(es) of its group running; the agent stopped them.", e.Leftovers)
	}
	switch {
	case e.Restart > 0:
		human += fmt.Sprintf(" Restarting it in %s (restart %d of %d); a delete cancels that.", e.RestartIn, e.Restart, w.Restart.Max)
	case w.Restart.OnFailure && e.SpawnFailed && (e.Signal != "" || e.Code != 0):
		human += " Not restarting it: it exited before its spawn's wait ended, so the spawn failed."
	case w.Restart.OnFailure && (e.Signal != "" || e.Code != 0) && w.Restarts >= w.Restart.Max:
		human += fmt.Sprintf(" Not restarting it: it was restarted %d time(s), its max_restarts.", w.Restarts)
	}
	n.Narrate("worker_exited", level, human, commands.Fields{WorkerID: w.WorkerID, PID: w.PID})
}

func (c *Consumer) publishEvent(event string, v any) {
	subj, err := subjects.WorkerEvent(c.cfg.HiveID, event)
	c.publishTo(subj, err, v)
}

// exitCause is the cause label of hive_agent_worker_exits_total.
func exitCause(e spawner.Exit) string {
	switch {
	case e.Signal != "":
		return metrics.CauseSignaled
	case e.Code < 0:
		return metrics.CauseUnknown
	case e.Code == 0:
		return metrics.CauseExited
	}
	return metrics.CauseFailed
}

// publishTo publishes v as JSON on subj, the event subject a builder gave
// (with its error): the one way every lifecycle event leaves.
func (c *Consumer) publishTo(subj string, subjErr error, v any) {
	if subjErr != nil {
		c.log.Error("event subject", "err", subjErr)
		return
	}
	body, err := json.Marshal(v)
	if err == nil {
		err = c.nc.Publish(subj, body)
	}
	if err != nil {
		c.log.Warn("publish event", "subject", subj, "err", err)
	}
}
