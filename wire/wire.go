// Package wire is hive-agent's protocol, written once: every request body,
// the reply and its error object with the stable codes, the command kinds
// and wait modes, narration events, every result and every lifecycle
// event, with the time formats they use. The agent (commands, consumer)
// and the client both use these types, so the two sides cannot drift.
//
// It imports nothing of the project, only the standard library. Subject
// names are the subjects package's; what the fields mean is in
// docs/protocol.md and docs/nats.md.
package wire

import (
	"fmt"
	"time"
)

// Command kinds as they appear on the wire in "kind". They are protocol
// constants, never derived from Go type names.
const (
	KindSpawn  = "worker.spawn"
	KindDelete = "worker.delete"
	KindList   = "worker.list"
	KindGet    = "worker.get"
	KindLogs   = "worker.logs"
	// KindRestart is worker.restart (PROTOCOL v1.2 "Restart").
	KindRestart = "worker.restart"
	// KindDrain and KindResume are the agent commands.
	KindDrain  = "agent.drain"
	KindResume = "agent.resume"
)

// Kinds lists every command kind.
var Kinds = []string{KindSpawn, KindDelete, KindList, KindGet, KindLogs, KindRestart, KindDrain, KindResume}

// Wait modes of a spawn: what its reply waits for.
const (
	WaitExec  = "exec"
	WaitAlive = "alive"
	WaitReady = "ready"
)

// Narration levels.
const (
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// Actor is the actor of every narration event the agent publishes.
const Actor = "hive-agent"

// Time formats. TimeFormat is how times other than narration timestamps go
// on the wire (started_at): RFC 3339 in UTC with milliseconds.
// EventTimeFormat is a narration event's ts: RFC 3339 in UTC with
// nanoseconds, fixed width so that events sort as text.
const (
	TimeFormat      = "2006-01-02T15:04:05.000Z07:00"
	EventTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"
)

// Time is a time on the wire in TimeFormat. It reads any RFC 3339 time.
type Time struct{ time.Time }

// MarshalJSON writes t in TimeFormat, in UTC.
func (t Time) MarshalJSON() ([]byte, error) { return marshalTime(t.Time, TimeFormat) }

// FormatTime is t as a Time goes on the wire, for text that shows one.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// UnmarshalJSON reads an RFC 3339 time.
func (t *Time) UnmarshalJSON(b []byte) error { return unmarshalTime(b, &t.Time) }

// EventTime is a narration event's ts, in EventTimeFormat. It reads any
// RFC 3339 time.
type EventTime struct{ time.Time }

// MarshalJSON writes t in EventTimeFormat, in UTC.
func (t EventTime) MarshalJSON() ([]byte, error) { return marshalTime(t.Time, EventTimeFormat) }

// UnmarshalJSON reads an RFC 3339 time.
func (t *EventTime) UnmarshalJSON(b []byte) error { return unmarshalTime(b, &t.Time) }

func marshalTime(t time.Time, layout string) ([]byte, error) {
	b := make([]byte, 0, len(layout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, layout)
	return append(b, '"'), nil
}

func unmarshalTime(b []byte, t *time.Time) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("time %s: want an RFC 3339 string", b)
	}
	v, err := time.Parse(time.RFC3339Nano, string(b[1:len(b)-1]))
	if err != nil {
		return fmt.Errorf("time %s: %w", b, err)
	}
	*t = v
	return nil
}
