package consumer

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/subjects"
)

// StartedEvent is published on hive.<hive_id>.events.worker.started.
type StartedEvent struct {
	HiveID     string `json:"hive_id"`
	WorkerID   string `json:"worker_id"`
	JobID      string `json:"job_id"`
	PID        int    `json:"pid"`
	Port       int    `json:"port"`
	ModelID    string `json:"model_id"`
	Device     string `json:"device"`
	WorkerType string `json:"worker_type"`
	StartedAt  string `json:"started_at"`
}

// ExitedEvent is published on hive.<hive_id>.events.worker.exited.
type ExitedEvent struct {
	HiveID   string `json:"hive_id"`
	WorkerID string `json:"worker_id"`
	JobID    string `json:"job_id"`
	PID      int    `json:"pid"`
	// ExitCode is set when the worker exited; Signal when a signal ended it.
	ExitCode *int     `json:"exit_code,omitempty"`
	Signal   string   `json:"signal,omitempty"`
	RanMS    int64    `json:"ran_ms"`
	LogTail  []string `json:"log_tail"`
	// LeftoversStopped counts the children the worker left running when it
	// exited by itself, which the agent then stopped; absent when none.
	LeftoversStopped int `json:"leftovers_stopped,omitempty"`
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
	n.Narrate("worker_process_started", commands.LevelInfo,
		fmt.Sprintf("Started worker %s as pid %d on port %d; its output goes to %s.", w.WorkerID, w.PID, w.Port, w.LogPath),
		commands.Fields{WorkerID: w.WorkerID, PID: w.PID})
	c.publishEvent(subjects.EventStarted, StartedEvent{
		HiveID: w.HiveID, WorkerID: w.WorkerID, JobID: w.JobID, PID: w.PID, Port: w.Port,
		ModelID: w.ModelID, Device: w.Device, WorkerType: string(w.WorkerType),
		StartedAt: commands.FormatTime(w.StartedAt()),
	})
}

// WorkerExited publishes the exited event of a worker this agent started
// and narrates its end on the spawning job. Wire it to spawner.Config.OnExit.
func (c *Consumer) WorkerExited(w spawner.Worker, e spawner.Exit) {
	tail, err := spawner.LogTail(w.LogPath, ExitLogLines)
	if err != nil {
		c.log.Warn("read worker log", "worker_id", w.WorkerID, "err", err)
		tail = []string{}
	}
	ev := ExitedEvent{HiveID: w.HiveID, WorkerID: w.WorkerID, JobID: w.JobID, PID: w.PID,
		Signal: e.Signal, RanMS: e.RanMS, LogTail: tail, LeftoversStopped: e.Leftovers}
	level := commands.LevelInfo
	if e.Signal == "" {
		code := e.Code
		ev.ExitCode = &code
	}
	if e.Signal != "" || e.Code != 0 {
		level = commands.LevelWarn
	}
	c.log.Info("worker exited", "worker_id", w.WorkerID, "pid", w.PID, "exit_code", e.Code, "signal", e.Signal, "ran_ms", e.RanMS)
	c.publishEvent(subjects.EventExited, ev)

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
	n.Narrate("worker_exited", level, human, commands.Fields{WorkerID: w.WorkerID, PID: w.PID})
}

func (c *Consumer) publishEvent(event string, v any) {
	subj, err := subjects.WorkerEvent(c.cfg.HiveID, event)
	if err != nil {
		c.log.Error("event subject", "err", err)
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
