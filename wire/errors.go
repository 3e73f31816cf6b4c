package wire

// Stable wire error codes. They are part of the protocol: never rename one.
const (
	CodeBadRequest        = "bad_request"
	CodeUnknownCommand    = "unknown_command"
	CodeNotFound          = "not_found"
	CodeConflict          = "conflict"
	CodeBinaryNotFound    = "binary_not_found"
	CodeDeviceUnavailable = "device_unavailable"
	CodeSpawnFailed       = "spawn_failed"
	CodeWorkerExited      = "worker_exited"
	CodeNotReady          = "not_ready"
	CodeBusy              = "busy"
	CodeInternal          = "internal"
	// CodeInsufficientVRAM: the pinned GPU has less free memory than the
	// spawn's min_free_vram_mib (or its type's vram_mib).
	CodeInsufficientVRAM = "insufficient_vram"
	// CodeDraining answers a spawn or restart while the agent drains.
	CodeDraining = "draining"
)

// Error is the error object of an ok:false reply: the agent refused or
// failed the command. Code is one of the stable codes; Field names the
// request field at fault, when one is.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Reply is the body of every reply and of job.<job_id>.result. Result is
// set when OK; Error when not. The agent sends Reply[any]; a client reads
// the result type of the kind it sent.
type Reply[T any] struct {
	OK        bool   `json:"ok"`
	Kind      string `json:"kind"`
	HiveID    string `json:"hive_id"`
	JobID     string `json:"job_id"`
	CommandID string `json:"command_id"`
	Result    T      `json:"result,omitempty"`
	Error     *Error `json:"error,omitempty"`
}
