package main

import (
	"context"
	"strings"
	"time"

	"github.com/rbee/hive-agent/client"
)

// drainCmd is `hive-agent drain`: the hive starts no workers until resume.
type drainCmd struct {
	hiveFlag    `embed:""`
	StopWorkers bool          `name:"stop-workers" help:"Also delete every worker (SIGTERM, SIGKILL after 5s) once --deadline has passed."`
	Deadline    time.Duration `name:"deadline" help:"With --stop-workers: how long workers may keep running first (default 0: at once)."`
	clientFlags `embed:""`
}

func (d *drainCmd) check() error {
	if d.Deadline < 0 || d.Deadline > 24*time.Hour {
		return usagef("--deadline %v: want 0s to 24h", d.Deadline)
	}
	if d.Deadline > 0 && !d.StopWorkers {
		return usagef("--deadline needs --stop-workers: it is how long workers may keep running")
	}
	return d.checkIDs(nil)
}

func (d *drainCmd) run(ctx context.Context, o *output, c *client.Client) error {
	n := narrator{o: o}
	r, err := c.Drain(ctx, d.Hive, d.StopWorkers, d.Deadline, n.event)
	if err != nil {
		return n.failed(ctx, d.Hive, err)
	}
	return printDrain(o, d.JSON, r)
}

// resumeCmd is `hive-agent resume`: the end of a drain.
type resumeCmd struct {
	hiveFlag    `embed:""`
	clientFlags `embed:""`
}

func (r *resumeCmd) check() error { return r.checkIDs(nil) }

func (r *resumeCmd) run(ctx context.Context, o *output, c *client.Client) error {
	n := narrator{o: o}
	rep, err := c.Resume(ctx, r.Hive, n.event)
	if err != nil {
		return n.failed(ctx, r.Hive, err)
	}
	return printDrain(o, r.JSON, rep)
}

func printDrain(o *output, asJSON bool, r client.Reply[client.DrainResult]) error {
	if asJSON {
		return o.json(r)
	}
	res := r.Result
	stopped := ""
	if res.StopWorkers {
		stopped = "none"
		if len(res.Stopped) > 0 {
			stopped = strings.Join(res.Stopped, ", ")
		}
	}
	draining := "no"
	if res.Draining {
		draining = "yes, since " + res.Since
	}
	return o.fields("hive", r.HiveID, "draining", draining, "stopped", stopped, "job", r.JobID)
}
