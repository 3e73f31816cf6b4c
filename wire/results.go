package wire

import (
	"strconv"
	"time"
)

// SpawnResult is the result of worker.spawn.
type SpawnResult struct {
	WorkerID   string `json:"worker_id"`
	PID        int    `json:"pid"`
	Port       int    `json:"port"`
	Device     string `json:"device"`
	WorkerType string `json:"worker_type"`
	ModelID    string `json:"model_id"`
	BinaryPath string `json:"binary_path"`
	LogPath    string `json:"log_path"`
	StartedAt  Time   `json:"started_at"`
	// Wait is the wait mode the reply waited for.
	Wait string `json:"wait"`
	// Existing is true when this was a resend of the command that started
	// the running worker: nothing new was started.
	Existing bool `json:"existing,omitempty"`
}

// DeleteResult is the result of worker.delete.
type DeleteResult struct {
	WorkerID string `json:"worker_id"`
	// PID is the stopped worker's; absent when no process was left (the
	// delete only cancelled a pending restart).
	PID int `json:"pid,omitempty"`
	// Signal is the last signal sent: SIGTERM, or SIGKILL when the grace ran
	// out; on Windows CTRL_BREAK, or TERMINATE.
	Signal    string `json:"signal"`
	StoppedMS int64  `json:"stopped_ms"`
	// RestartCancelled is true when the worker had failed and was waiting
	// for its restart, which the delete cancelled.
	RestartCancelled bool `json:"restart_cancelled,omitempty"`
	// GPUReleased and GPUReleaseMS, for a worker on a GPU, say whether its
	// processes left the GPU within --vram-release-timeout, and when.
	GPUReleased  *bool  `json:"gpu_released,omitempty"`
	GPUReleaseMS *int64 `json:"gpu_release_ms,omitempty"`
}

// AlreadyStoppedResult is the result of a delete delivered again by the
// intake after the agent stopped mid-way, when the worker is gone: most
// likely the earlier delivery stopped it.
type AlreadyStoppedResult struct {
	WorkerID       string `json:"worker_id"`
	AlreadyStopped bool   `json:"already_stopped"`
	Note           string `json:"note"`
}

// WorkerInfo is one worker as list, get and the inventory report it.
type WorkerInfo struct {
	WorkerID   string `json:"worker_id"`
	PID        int    `json:"pid"`
	WorkerType string `json:"worker_type"`
	ModelID    string `json:"model_id"`
	Device     string `json:"device"`
	Port       int    `json:"port"`
	JobID      string `json:"job_id"`
	StartedAt  Time   `json:"started_at"`
	UptimeMS   int64  `json:"uptime_ms"`
	RSSBytes   uint64 `json:"rss_bytes"`
	BinaryPath string `json:"binary_path"`
	LogPath    string `json:"log_path"`
	// GPUMemoryMiB is the memory the worker's processes hold on GPUs, for
	// workers on a GPU when nvidia-smi answers.
	GPUMemoryMiB *int64 `json:"gpu_memory_mib,omitempty"`
	WorkerStatus
}

// WorkerStatus is the part of a worker entry that says how it is
// (PROTOCOL v1.2 "Worker state").
type WorkerStatus struct {
	// State is starting, loading, running, ready, unhealthy, stopping,
	// backoff or exited.
	State string `json:"state"`
	// Restarts counts the restarts of this worker id so far.
	Restarts int `json:"restarts"`
	// RestartAt is when a worker in backoff is started again.
	RestartAt Time `json:"restart_at,omitzero"`
	// ExitCode or Signal, ExitedAt and RanMS are set on exited and
	// backoff entries (neither of the first two when the status is
	// unknown: a worker adopted from an earlier run).
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	ExitedAt Time   `json:"exited_at,omitzero"`
	RanMS    int64  `json:"ran_ms,omitempty"`
}

// Uptime is how long the worker had been running when the agent answered.
func (w WorkerInfo) Uptime() time.Duration { return time.Duration(w.UptimeMS) * time.Millisecond }

// ListResult is the result of worker.list.
type ListResult struct {
	Workers []WorkerInfo `json:"workers"`
}

// GetResult is the result of worker.get: the worker and its log's tail.
type GetResult struct {
	WorkerInfo
	LogTail []string `json:"log_tail"`
}

// LogsResult is the result of worker.logs.
type LogsResult struct {
	WorkerID string   `json:"worker_id"`
	LogPath  string   `json:"log_path"`
	Lines    []string `json:"lines"`
	// Offset is where the next read starts: pass it back as offset.
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
	// Truncated is true when the log was shorter than the offset asked
	// (rotated or truncated) and reading restarted at 0.
	Truncated bool `json:"truncated"`
	// Running is true while a worker of that id runs; false for the log a
	// stopped worker left. A follower stops once it read everything of a
	// log whose worker is no longer running.
	Running bool `json:"running"`
}

// RestartResult is the result of worker.restart: a spawn result plus the
// pid of the process it replaced.
type RestartResult struct {
	SpawnResult
	PreviousPID int `json:"previous_pid"`
}

// DrainState is the agent's drain state as drain and resume report it.
type DrainState struct {
	Draining    bool  `json:"draining"`
	StopWorkers bool  `json:"stop_workers,omitempty"`
	DeadlineMS  int64 `json:"deadline_ms,omitempty"`
	Since       Time  `json:"since,omitzero"`
}

// DrainResult is the result of agent.drain and agent.resume.
type DrainResult struct {
	DrainState
	// Stopped lists the workers a drain with stop_workers deleted.
	Stopped []string `json:"stopped,omitempty"`
	// Resumed is true when a resume ended the drain before its deadline.
	Resumed bool `json:"resumed,omitempty"`
}

// GPUInfo is one GPU as the metadata, the stats and `hive-agent hives`
// show it. Index is the N of cuda:N, which a spawn names (the host index
// unless the agent's CUDA_VISIBLE_DEVICES reorders or hides GPUs).
type GPUInfo struct {
	Device         string `json:"device"`
	Index          int    `json:"index"`
	UUID           string `json:"uuid"`
	Name           string `json:"name"`
	MemoryTotalMiB int64  `json:"memory_total_mib"`
	MemoryUsedMiB  int64  `json:"memory_used_mib"`
	MemoryFreeMiB  int64  `json:"memory_free_mib"`
	Tainted        bool   `json:"tainted"`
	TaintedPIDs    []int  `json:"tainted_pids,omitempty"`
}

// Worker states.
const (
	StateStarting  = "starting"
	StateLoading   = "loading"
	StateRunning   = "running"
	StateReady     = "ready"
	StateUnhealthy = "unhealthy"
	StateStopping  = "stopping"
	StateBackoff   = "backoff"
	StateExited    = "exited"
)

// ExitText describes how an exited worker ended: "exit 3", "SIGKILL", or
// "unknown"; empty for a worker that runs.
func (s WorkerStatus) ExitText() string {
	switch {
	case s.ExitedAt.IsZero():
		return ""
	case s.Signal != "":
		return s.Signal
	case s.ExitCode != nil:
		return "exit " + strconv.Itoa(*s.ExitCode)
	}
	return "unknown"
}
