// Package commands holds hive-agent's command objects: Spawn, Delete, List,
// Get and Logs. Decode reads a request body strictly into one of them; each
// validates itself and runs through the small Spawner interface declared
// here. Nothing in this package knows about NATS.
package commands

import (
	"context"
	"time"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/spawner"
)

// Command kinds as they appear on the wire in "kind". They are protocol
// constants, never derived from Go type names.
const (
	KindSpawn  = "worker.spawn"
	KindDelete = "worker.delete"
	KindList   = "worker.list"
	KindGet    = "worker.get"
	KindLogs   = "worker.logs"
)

// Command is one decoded, validated request.
type Command interface {
	// Kind is the wire kind, e.g. "worker.spawn".
	Kind() string
	// Env is the command's envelope (job and command ids).
	Env() Envelope
	// Execute runs the command. The error, if any, is mapped with ToError.
	Execute(ctx context.Context, d Deps) (any, error)
}

// Spawner is what commands need from the operating system side.
// Implementations must be safe for concurrent use.
type Spawner interface {
	HiveID() string
	CheckDevice(spawner.Device) error
	// Resolve finds a worker binary: an absolute path, or a file name
	// looked up in the worker directories and PATH.
	Resolve(binary string) (string, error)
	Start(ctx context.Context, spec spawner.Spec) (*spawner.Handle, error)
	List(ctx context.Context) ([]spawner.Worker, error)
	Find(ctx context.Context, workerID string) (spawner.Worker, error)
	Stop(ctx context.Context, workerID string, grace time.Duration, onSignal func(sig string, w spawner.Worker)) (spawner.StopResult, error)
	// WorkerLogTail and ReadLog read a worker's log; a path outside the
	// agent's log directory reads as no lines.
	WorkerLogTail(w spawner.Worker, n int) ([]string, error)
	ReadLog(w spawner.Worker, q spawner.LogQuery) (spawner.LogRead, error)
	// LogPathOf is where the worker with this id logs, running or not.
	LogPathOf(workerID string) string
	// CancelRestart cancels a failed worker's pending restart and reports
	// whether there was one.
	CancelRestart(workerID string) bool
	// StateOf and Departed give worker states and recent exits (state.go).
	StateOf(w spawner.Worker) spawner.State
	Departed() []spawner.Departed
}

// Events publishes the lifecycle events commands cause. Implementations
// must be safe for concurrent use; a failed publish is logged, not returned.
type Events interface {
	// WorkerStopping is called right before the first signal of a delete,
	// so that routers stop sending work to the worker before it drains.
	WorkerStopping(w spawner.Worker, byJobID string, grace time.Duration)
}

// Narration levels.
const (
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Fields are the optional fields of a narration event.
type Fields struct {
	WorkerID string
	PID      int
}

// Narrator publishes a command's progress events, in order. Implementations
// must be safe for concurrent use; a failed publish is logged, not returned.
type Narrator interface {
	Narrate(action, level, human string, f Fields)
}

// NarratorFunc adapts a function to Narrator.
type NarratorFunc func(action, level, human string, f Fields)

// Narrate calls fn.
func (fn NarratorFunc) Narrate(action, level, human string, f Fields) { fn(action, level, human, f) }

// Defaults are the agent's settings a command falls back on.
type Defaults struct {
	QueenURL     string
	Wait         string
	AliveWindow  time.Duration
	ReadyTimeout time.Duration
	// ProgressInterval is how often a wait for ready narrates that the
	// worker is still loading; 0: every 5 s.
	ProgressInterval time.Duration
}

// Deps is what Execute runs with.
type Deps struct {
	Spawner  Spawner
	Narrator Narrator
	// Events may be nil: then no lifecycle events are published.
	Events   Events
	Defaults Defaults
	// Catalog holds the worker types; nil: catalog.Builtin().
	Catalog *catalog.Catalog
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxResultBytes, when positive, is how many bytes the result may take
	// JSON-encoded so that the reply fits the connection's max payload;
	// a logs read returns no more than fits.
	MaxResultBytes int64
	// GPU is the GPU memory policy; nil admits every spawn and checks
	// no release (spawn_gpu.go).
	GPU *GPUPolicy
	// Agent serves agent.drain and agent.resume; nil: they fail.
	Agent Agent
}

func (d Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// WorkerInfo is one worker as list and get report it.
type WorkerInfo struct {
	WorkerID   string `json:"worker_id"`
	PID        int    `json:"pid"`
	WorkerType string `json:"worker_type"`
	ModelID    string `json:"model_id"`
	Device     string `json:"device"`
	Port       int    `json:"port"`
	JobID      string `json:"job_id"`
	StartedAt  string `json:"started_at"`
	UptimeMS   int64  `json:"uptime_ms"`
	RSSBytes   uint64 `json:"rss_bytes"`
	BinaryPath string `json:"binary_path"`
	LogPath    string `json:"log_path"`
	// GPUMemoryMiB is the memory the worker's processes hold on GPUs, for
	// workers on a GPU when nvidia-smi answers.
	GPUMemoryMiB *int64 `json:"gpu_memory_mib,omitempty"`
	WorkerStatus
}

func infoOf(w spawner.Worker, now time.Time) WorkerInfo {
	return WorkerInfo{
		WorkerID: w.WorkerID, PID: w.PID, WorkerType: string(w.WorkerType), ModelID: w.ModelID,
		Device: w.Device, Port: w.Port, JobID: w.JobID, StartedAt: FormatTime(w.StartedAt()),
		UptimeMS: max(0, now.Sub(w.StartedAt()).Milliseconds()), RSSBytes: w.RSSBytes,
		BinaryPath: w.BinaryPath, LogPath: w.LogPath,
		WorkerStatus: WorkerStatus{Restarts: w.Restarts},
	}
}

// FormatTime is how times other than narration timestamps go on the wire:
// RFC 3339 in UTC with milliseconds.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
