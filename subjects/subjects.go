// Package subjects builds and validates every NATS subject hive-agent uses.
// Nothing else in the project builds a subject string: each builder checks
// its tokens first, so an id with a dot or a wildcard can never widen or
// redirect a subscription or a publish.
package subjects

import (
	"errors"
	"fmt"
	"strings"
)

// MaxTokenLen is the longest id accepted as a subject token.
const MaxTokenLen = 64

// Command names, as the last token of a worker command subject.
const (
	Spawn  = "spawn"
	Delete = "delete"
	List   = "list"
	Get    = "get"
	Logs   = "logs"
	// Restart is PROTOCOL v1.2's worker.restart.
	Restart = "restart"
)

// Commands lists the command tokens the agent serves.
var Commands = []string{Spawn, Delete, List, Get, Logs, Restart}

var (
	// ErrEmptyToken is returned for an empty id.
	ErrEmptyToken = errors.New("must not be empty")
	// ErrTokenTooLong is returned for an id longer than MaxTokenLen.
	ErrTokenTooLong = fmt.Errorf("must be at most %d characters", MaxTokenLen)
	// ErrTokenChars is returned for an id with a character outside A-Z a-z 0-9 _ -.
	ErrTokenChars = errors.New("may only contain A-Z a-z 0-9 _ -")
)

// ValidToken reports whether s may be used as one subject token (and as a
// process marker or a file name): 1-64 characters of A-Z a-z 0-9 _ -.
func ValidToken(s string) error {
	if s == "" {
		return ErrEmptyToken
	}
	if len(s) > MaxTokenLen {
		return ErrTokenTooLong
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return ErrTokenChars
		}
	}
	return nil
}

// field names an id for an error message.
type field struct{ name, value string }

func checked(ids []field, tokens ...string) (string, error) {
	for _, f := range ids {
		if err := ValidToken(f.value); err != nil {
			return "", fmt.Errorf("%s %q: %w", f.name, f.value, err)
		}
	}
	return strings.Join(tokens, "."), nil
}

// WorkerCommand is the subject of one worker command: hive.<hive>.worker.<cmd>.
func WorkerCommand(hive, cmd string) (string, error) {
	return checked([]field{{"hive_id", hive}, {"command", cmd}}, "hive", hive, "worker", cmd)
}

// WorkerCommandPrefix is hive.<hive>.worker, the group every command subject is under.
func WorkerCommandPrefix(hive string) (string, error) {
	return checked([]field{{"hive_id", hive}}, "hive", hive, "worker")
}

// WorkerCommandWildcard matches every subject under hive.<hive>.worker.
func WorkerCommandWildcard(hive string) (string, error) {
	p, err := WorkerCommandPrefix(hive)
	if err != nil {
		return "", err
	}
	return p + ".>", nil
}

// JobNarration is job.<job>.narration, where a command's progress events go.
func JobNarration(job string) (string, error) {
	return checked([]field{{"job_id", job}}, "job", job, "narration")
}

// JobResult is job.<job>.result, where a command's final result goes.
func JobResult(job string) (string, error) {
	return checked([]field{{"job_id", job}}, "job", job, "result")
}

// Lifecycle event names, the last token of hive.<hive>.events.worker.<event>.
const (
	EventStarted = "started"
	EventExited  = "exited"
	// EventStopping is published before a delete's first signal.
	EventStopping = "stopping"
	// EventRestartResumed and EventRestartAbandoned say what an agent did
	// with a restart an earlier agent announced but did not start.
	EventRestartResumed   = "restart_resumed"
	EventRestartAbandoned = "restart_abandoned"
)

// WorkerEvent is hive.<hive>.events.worker.<event>.
func WorkerEvent(hive, event string) (string, error) {
	return checked([]field{{"hive_id", hive}, {"event", event}}, "hive", hive, "events", "worker", event)
}

// Inventory is hive.<hive>.events.inventory, where the agent lists its
// workers after every connect and reconnect.
func Inventory(hive string) (string, error) {
	return checked([]field{{"hive_id", hive}}, "hive", hive, "events", "inventory")
}

// Agent command names, the last token of hive.<hive>.agent.<cmd> (PROTOCOL v1.2 "Drain").
const (
	Drain  = "drain"
	Resume = "resume"
)

// AgentCommands lists the agent command tokens the agent serves.
var AgentCommands = []string{Drain, Resume}

// AgentCommand is hive.<hive>.agent.<cmd>, a command to the agent itself.
func AgentCommand(hive, cmd string) (string, error) {
	return checked([]field{{"hive_id", hive}, {"command", cmd}}, "hive", hive, "agent", cmd)
}

// Agent event names, the last token of hive.<hive>.events.agent.<event>.
const (
	EventDraining = "draining"
	EventResumed  = "resumed"
)

// AgentEvent is hive.<hive>.events.agent.<event>.
func AgentEvent(hive, event string) (string, error) {
	return checked([]field{{"hive_id", hive}, {"event", event}}, "hive", hive, "events", "agent", event)
}

// AllEvents matches every event of every hive: hive.*.events.>.
const AllEvents = "hive.*.events.>"

// Events matches every event of one hive: hive.<hive>.events.>.
func Events(hive string) (string, error) {
	return checked([]field{{"hive_id", hive}}, "hive", hive, "events", ">")
}
