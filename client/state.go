package client

import (
	"strconv"
	"time"
)

// WorkerStatus is how a worker is (PROTOCOL v1.2 "Worker state"), part of
// every Worker entry.
type WorkerStatus struct {
	// State is starting, loading, running, ready, unhealthy, stopping,
	// backoff or exited.
	State string `json:"state"`
	// Restarts counts the restarts of this worker id so far.
	Restarts int `json:"restarts"`
	// RestartAt is when a worker in backoff is started again.
	RestartAt *time.Time `json:"restart_at,omitempty"`
	// ExitCode or Signal, ExitedAt and RanMS are set on exited and
	// backoff entries (neither of the first two when the agent could not
	// know: a worker adopted from an earlier run).
	ExitCode *int       `json:"exit_code,omitempty"`
	Signal   string     `json:"signal,omitempty"`
	ExitedAt *time.Time `json:"exited_at,omitempty"`
	RanMS    int64      `json:"ran_ms,omitempty"`
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
	case s.ExitedAt == nil:
		return ""
	case s.Signal != "":
		return s.Signal
	case s.ExitCode != nil:
		return "exit " + strconv.Itoa(*s.ExitCode)
	}
	return "unknown"
}

// ListOptions are the options of ListWith and ListAllWith.
type ListOptions struct {
	// Exited adds the workers that exited within the agent's
	// --exited-ttl (list "all": true).
	Exited bool
}

func (o ListOptions) wire() any {
	type body struct {
		All bool `json:"all,omitempty"`
	}
	return body{All: o.Exited}
}

// departedText is the ls UPTIME cell of a worker that is not running:
// how it ended and when, and when it restarts.
func departedText(s WorkerStatus, now time.Time) string {
	txt := s.ExitText() + ", " + HumanDuration(now.Sub(*s.ExitedAt)) + " ago"
	if s.RestartAt != nil {
		txt += ", restart in " + HumanDuration(max(0, s.RestartAt.Sub(now)))
	}
	return txt
}
