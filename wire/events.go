package wire

// Event is one narration event on job.<job_id>.narration.
type Event struct {
	Seq       uint64    `json:"seq"`
	TS        EventTime `json:"ts"`
	HiveID    string    `json:"hive_id"`
	JobID     string    `json:"job_id"`
	CommandID string    `json:"command_id"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	// Level is info, warn or error.
	Level    string `json:"level"`
	Human    string `json:"human"`
	WorkerID string `json:"worker_id,omitempty"`
	PID      int    `json:"pid,omitempty"`
	// OK is set on a command's end event only; Error when it failed.
	OK    *bool  `json:"ok,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// End reports whether e is its command's end event.
func (e Event) End() bool { return e.OK != nil }

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
	StartedAt  Time   `json:"started_at"`
	// Restart is which restart of its spawn this start is (the worker's
	// restart policy started it again after a failure); absent for the
	// spawn's own start.
	Restart int `json:"restart,omitempty"`
}

// StoppingEvent is published on hive.<hive_id>.events.worker.stopping
// before a delete's first signal, so that routers stop sending the worker
// work before it drains.
type StoppingEvent struct {
	HiveID   string `json:"hive_id"`
	WorkerID string `json:"worker_id"`
	// JobID is the job that spawned the worker; ByJobID the delete's.
	JobID   string `json:"job_id"`
	PID     int    `json:"pid"`
	ByJobID string `json:"by_job_id"`
	GraceMS int64  `json:"grace_ms"`
}

// ExitedEvent is published on hive.<hive_id>.events.worker.exited.
type ExitedEvent struct {
	HiveID   string `json:"hive_id"`
	WorkerID string `json:"worker_id"`
	JobID    string `json:"job_id"`
	PID      int    `json:"pid"`
	// ExitCode is set when the worker exited; Signal when a signal ended
	// it. Both are absent when the status is unknown (an adopted worker).
	ExitCode *int     `json:"exit_code,omitempty"`
	Signal   string   `json:"signal,omitempty"`
	RanMS    int64    `json:"ran_ms"`
	LogTail  []string `json:"log_tail"`
	// LeftoversStopped counts the children the worker left running when it
	// exited by itself, which the agent then stopped; absent when none.
	LeftoversStopped int `json:"leftovers_stopped,omitempty"`
	// Adopted is true for a worker started by an earlier run of the agent.
	Adopted bool `json:"adopted,omitempty"`
	// Restart is the restart that follows after RestartInMS (the worker's
	// restart policy starts it again); absent when none does.
	Restart     int   `json:"restart,omitempty"`
	RestartInMS int64 `json:"restart_in_ms,omitempty"`
}

// Inventory reasons.
const (
	InventoryStart     = "start"
	InventoryReconnect = "reconnect"
)

// InventoryEvent is published on hive.<hive_id>.events.inventory on
// every connect and reconnect, so that a queen that was cut off from this
// agent can reconcile what it believes runs here.
type InventoryEvent struct {
	HiveID string `json:"hive_id"`
	// Reason is "start" or "reconnect".
	Reason string `json:"reason"`
	// Instance is the agent's micro service id.
	Instance string `json:"instance"`
	// Workers is what worker.list would answer.
	Workers []WorkerInfo `json:"workers"`
}

// StatsData is the agent's data in each endpoint of the micro service's
// $SRV.STATS answer.
type StatsData struct {
	// Commands and Errors (by code) count this endpoint's commands.
	Commands uint64            `json:"commands"`
	Errors   map[string]uint64 `json:"errors"`
	// InFlight and MaxInFlight are the agent's, across endpoints.
	InFlight    int `json:"in_flight"`
	MaxInFlight int `json:"max_in_flight"`
	// UnknownCommands counts requests to subjects that name no command.
	UnknownCommands uint64 `json:"unknown_commands"`
	// Republished counts results and replies published again after a
	// reconnect, across endpoints.
	Republished uint64 `json:"republished"`
	// ResultsNotStored counts intake commands whose result HIVE_JOBS kept
	// refusing (e.g. full with discard new): published and acknowledged
	// anyway, so not readable later (docs/intake.md). Across endpoints.
	ResultsNotStored uint64 `json:"results_not_stored"`
	// GPUs are the agent's GPUs now (memory, taint).
	GPUs []GPUInfo `json:"gpus,omitempty"`
}

// PendingRestartEvent is published on
// hive.<hive_id>.events.worker.restart_resumed when the agent, at start,
// takes on a restart that an earlier agent announced in an exited event
// (restart, restart_in_ms) but was stopped or killed before starting, and
// on hive.<hive_id>.events.worker.restart_abandoned when it cannot (Reason).
type PendingRestartEvent struct {
	HiveID   string `json:"hive_id"`
	WorkerID string `json:"worker_id"`
	JobID    string `json:"job_id,omitempty"`
	ModelID  string `json:"model_id,omitempty"`
	Port     int    `json:"port,omitempty"`
	// Restart is the restart that was due, of MaxRestarts.
	Restart     int `json:"restart,omitempty"`
	MaxRestarts int `json:"max_restarts,omitempty"`
	// DueAt is when the backoff ends; RestartInMS how long from now (0:
	// overdue, started at once). Absent when the record was unreadable.
	DueAt       Time   `json:"due_at,omitzero"`
	RestartInMS *int64 `json:"restart_in_ms,omitempty"`
	// Reason says why the restart is abandoned.
	Reason string `json:"reason,omitempty"`
}

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
	Since Time `json:"since"`
	// Action is what the agent does about it: event or restart.
	Action string `json:"action,omitempty"`
}

// DrainEvent is published on hive.<hive_id>.events.agent.draining and
// ...events.agent.resumed.
type DrainEvent struct {
	HiveID string `json:"hive_id"`
	DrainState
}

// GPUReleased is the body of hive.<hive_id>.events.gpu.released: the
// worker's processes left the GPU, ms after the check began, freeing
// freed_mib (the most they were seen holding).
type GPUReleased struct {
	HiveID   string `json:"hive_id"`
	Device   string `json:"device"`
	UUID     string `json:"uuid"`
	WorkerID string `json:"worker_id"`
	FreedMiB int64  `json:"freed_mib"`
	MS       int64  `json:"ms"`
}

// GPUTainted is the body of hive.<hive_id>.events.gpu.tainted: processes
// of the worker still held used_mib on the GPU when the release timeout
// passed.
type GPUTainted struct {
	HiveID   string `json:"hive_id"`
	Device   string `json:"device"`
	UUID     string `json:"uuid"`
	WorkerID string `json:"worker_id"`
	PIDs     []int  `json:"pids"`
	UsedMiB  int64  `json:"used_mib"`
}

// HeartbeatEvent is published on hive.<hive_id>.events.agent.heartbeat
// every heartbeat interval (10 s by default) while the agent serves. Stored in
// HIVE_EVENTS, the last one of each hive says when it was last seen, so
// that `hive-agent hives` shows a hive that stopped answering as stale.
type HeartbeatEvent struct {
	HiveID string `json:"hive_id"`
	// Instance is the agent's micro service id.
	Instance string `json:"instance"`
	// Workers is how many workers the hive lists (-1 when the process
	// table could not be read).
	Workers  int  `json:"workers"`
	InFlight int  `json:"in_flight"`
	Draining bool `json:"draining"`
}
