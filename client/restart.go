package client

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/rbee/hive-agent/subjects"
)

// RestartRequest is a worker.restart command (PROTOCOL v1.2 "Restart").
type RestartRequest struct {
	JobID     string
	CommandID string
	WorkerID  string
	// Grace is the stop's grace; negative: the agent's default (5 s).
	Grace time.Duration
	// Wait is exec, alive or ready; empty: the worker type's or the agent's default.
	Wait string
	// WaitTimeout bounds wait ready on the agent; 0: its default.
	WaitTimeout time.Duration
}

// RestartResult is a spawn result plus the pid of the process it replaced.
type RestartResult struct {
	SpawnResult
	PreviousPID int `json:"previous_pid"`
}

// Restart stops worker req.WorkerID of hive as Delete would and starts it
// again with the spec it was started with (the agent reads it from the
// worker's marker). Narration and the wait for the answer work as in Spawn.
func (c *Client) Restart(ctx context.Context, hive string, req RestartRequest, onEvent func(Event)) (Reply[RestartResult], error) {
	type body struct {
		JobID         string `json:"job_id"`
		CommandID     string `json:"command_id"`
		WorkerID      string `json:"worker_id"`
		GraceMS       *int64 `json:"grace_ms,omitempty"`
		Wait          string `json:"wait,omitempty"`
		WaitTimeoutMS int64  `json:"wait_timeout_ms,omitempty"`
	}
	fresh := req.JobID == ""
	if fresh {
		req.JobID = uuid.NewString()
	}
	if req.CommandID == "" {
		req.CommandID = uuid.NewString()
	}
	b := body{JobID: req.JobID, CommandID: req.CommandID, WorkerID: req.WorkerID, Wait: req.Wait, WaitTimeoutMS: req.WaitTimeout.Milliseconds()}
	d := c.timeout
	if req.Grace >= 0 {
		ms := req.Grace.Milliseconds()
		b.GraceMS = &ms
		d = max(d, req.Grace+c.timeout)
	}
	if req.Wait == "ready" {
		d = max(d, DefaultReadyTimeout)
		if req.WaitTimeout > 0 {
			d = req.Grace + req.WaitTimeout + c.timeout
		}
	}
	j := job{hive: hive, cmd: subjects.Restart, jobID: req.JobID, commandID: req.CommandID, fresh: fresh, timeout: d}
	return runJob[RestartResult](ctx, c, j, b, onEvent)
}
