package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/spawner"
)

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
)

// Error is an error with a stable wire code. Field names the request field
// at fault, when one is.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// BadRequest is a bad_request error about field.
func BadRequest(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &Error{Code: CodeBadRequest, Message: msg, Field: field}
}

// codes maps the spawner's sentinels to wire codes.
var codes = []struct {
	err  error
	code string
}{
	{spawner.ErrBinaryNotFound, CodeBinaryNotFound},
	{spawner.ErrDeviceUnavailable, CodeDeviceUnavailable},
	{spawner.ErrWorkerNotFound, CodeNotFound},
	{spawner.ErrWorkerRunning, CodeConflict},
	{spawner.ErrPortTaken, CodeConflict},
	{spawner.ErrNoFreePort, CodeConflict},
	{spawner.ErrSpawn, CodeSpawnFailed},
	{spawner.ErrWorkerExited, CodeWorkerExited},
	{spawner.ErrNotReady, CodeNotReady},
	{catalog.ErrDeviceNotAccepted, CodeDeviceUnavailable},
}

// ToError turns any error from a command into the *Error sent on the wire.
// Errors without a known cause become internal.
func ToError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var exited *spawner.ExitedError
	if errors.As(err, &exited) {
		msg := exited.Error()
		if len(exited.LogTail) > 0 {
			msg += "; last log lines:\n" + strings.Join(exited.LogTail, "\n")
		}
		return &Error{Code: CodeWorkerExited, Message: msg}
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return &Error{Code: c.code, Message: err.Error()}
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeInternal, Message: "interrupted: " + err.Error()}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
