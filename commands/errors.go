package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// BadRequest is a bad_request error about field.
func BadRequest(field, format string, args ...any) *wire.Error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &wire.Error{Code: wire.CodeBadRequest, Message: msg, Field: field}
}

// codes maps the spawner's sentinels to wire codes.
var codes = []struct {
	err  error
	code string
}{
	{spawner.ErrBinaryNotFound, wire.CodeBinaryNotFound},
	{spawner.ErrDeviceUnavailable, wire.CodeDeviceUnavailable},
	{spawner.ErrWorkerNotFound, wire.CodeNotFound},
	{spawner.ErrWorkerRunning, wire.CodeConflict},
	{spawner.ErrPortTaken, wire.CodeConflict},
	{spawner.ErrNoFreePort, wire.CodeConflict},
	{spawner.ErrSpawn, wire.CodeSpawnFailed},
	{spawner.ErrWorkerExited, wire.CodeWorkerExited},
	{spawner.ErrNotReady, wire.CodeNotReady},
	{catalog.ErrDeviceNotAccepted, wire.CodeDeviceUnavailable},
}

// ToError turns any error from a command into the *wire.Error sent on the wire.
// Errors without a known cause become internal.
func ToError(err error) *wire.Error {
	var e *wire.Error
	if errors.As(err, &e) {
		return e
	}
	var exited *spawner.ExitedError
	if errors.As(err, &exited) {
		msg := exited.Error()
		if len(exited.LogTail) > 0 {
			msg += "; last log lines:\n" + strings.Join(exited.LogTail, "\n")
		}
		return &wire.Error{Code: wire.CodeWorkerExited, Message: msg}
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return &wire.Error{Code: c.code, Message: err.Error()}
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &wire.Error{Code: wire.CodeInternal, Message: "interrupted: " + err.Error()}
	}
	return &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
}
