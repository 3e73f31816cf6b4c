package wire

import "time"

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
	PID      int    `json:"pid"`
	// Signal is the last signal sent: SIGTERM, or SIGKILL when the grace ran out.
	Signal    string `json:"signal"`
	StoppedMS int64  `json:"stopped_ms"`
	// RestartCancelled is true when the worker had failed and was waiting
	// for its restart, which the delete cancelled.
	RestartCancelled bool `json:"restart_cancelled,omitempty"`
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
