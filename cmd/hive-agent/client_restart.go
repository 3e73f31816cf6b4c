package main

import (
	"context"
	"strconv"
	"time"

	"github.com/rbee/hive-agent/client"
)

// restartCmd is `hive-agent restart`: stop a worker and start it again
// with the spec it was started with, narrating as it goes.
type restartCmd struct {
	workerArg   `embed:""`
	hiveFlag    `embed:""`
	Grace       time.Duration `name:"grace" default:"5s" help:"How long the worker has after SIGTERM before SIGKILL (0-60s)."`
	Wait        string        `name:"wait" placeholder:"exec|alive|ready" help:"What the new start waits for (default: its type's, or the agent's --spawn-wait)."`
	Job         string        `name:"job" help:"Job id for the narration and result subjects (default: a new UUID)."`
	clientFlags `embed:""`
}

func (r *restartCmd) check() error {
	if r.Grace < 0 || r.Grace > maxGrace {
		return usagef("--grace %v: want 0s to 60s", r.Grace)
	}
	switch r.Wait {
	case "", "exec", "alive", "ready":
	default:
		return usagef("--wait %q: want exec, alive or ready", r.Wait)
	}
	if r.Job != "" {
		if err := checkToken("--job", r.Job); err != nil {
			return err
		}
	}
	return r.checkIDs(&r.workerArg)
}

func (r *restartCmd) run(ctx context.Context, o *output, c *client.Client) error {
	n := narrator{o: o}
	req := client.RestartRequest{JobID: r.Job, WorkerID: r.Worker, Grace: r.Grace, Wait: r.Wait}
	if r.Wait == "ready" && r.Timeout > 0 {
		req.WaitTimeout = r.Timeout
	}
	rep, err := c.Restart(ctx, r.Hive, req, n.event)
	if err != nil {
		return n.failed(ctx, r.Hive, err)
	}
	if r.JSON {
		return o.json(rep)
	}
	res := rep.Result
	return o.fields("worker", res.WorkerID, "hive", rep.HiveID, "pid", strconv.Itoa(res.PID), "previous pid", strconv.Itoa(res.PreviousPID),
		"port", strconv.Itoa(res.Port), "device", res.Device, "type", res.WorkerType, "model", res.ModelID, "waited", res.Wait,
		"started", o.out.when(res.StartedAt), "log", res.LogPath, "job", rep.JobID)
}
