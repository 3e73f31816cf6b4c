package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rbee/hive-agent/client"
)

// readyMargin is how much longer than its ready bound a spawn with
// --wait ready waits for the agent's answer, which comes after the bound.
const readyMargin = 30 * time.Second

// maxGrace is the agent's largest grace_ms (PROTOCOL.md).
const maxGrace = 60 * time.Second

// spawnCmd is `hive-agent spawn`: start a worker, narrating as it goes.
type spawnCmd struct {
	hiveFlag    `embed:""`
	Model       string `name:"model" short:"m" required:"" help:"Model id, e.g. meta-llama/Llama-3-8b."`
	Device      string `name:"device" short:"d" required:"" help:"Device: cpu, CPU-N, cuda:N, GPU-N, GPU-<uuid> or metal."`
	ID          string `name:"id" help:"Worker id (default: the agent makes one, worker-<8 hex>)."`
	Port        int    `name:"port" help:"Port (default: the agent picks a free one of its range)."`
	Type        string `name:"type" help:"Worker type (default: the device's; or a type of the agent's catalog)."`
	Wait        string `name:"wait" placeholder:"exec|alive|ready" help:"Answer once the process started (exec), stayed up for the alive window (alive) or answers its health check (ready). Default: the agent's --spawn-wait."`
	QueenURL    string `name:"queen-url" help:"Queen URL for the worker (default: the agent's --queen-url)."`
	Restart     string `name:"restart" placeholder:"no|on-failure" help:"Restart the worker when it fails (default: its type's policy)."`
	MaxRestarts int    `name:"max-restarts" default:"-1" help:"How often --restart on-failure restarts it (default: its type's)."`
	MinFreeVRAM int64  `name:"min-free-vram" default:"-1" help:"Refuse the spawn (insufficient_vram) unless the GPU has this many MiB free (default: its type's vram_mib)."`
	Job         string `name:"job" help:"Job id for the narration and result subjects, to read back later with hive-agent job (default: a new UUID)."`
	clientFlags `embed:""`
}

func (s *spawnCmd) check() error {
	if err := s.checkIDs(nil); err != nil {
		return err
	}
	if s.Job != "" {
		if err := checkToken("--job", s.Job); err != nil {
			return err
		}
	}
	if s.ID != "" {
		if err := checkToken("--id", s.ID); err != nil {
			return err
		}
	}
	switch s.Restart {
	case "", "no", "on-failure":
	default:
		return usagef("--restart %q: want no or on-failure", s.Restart)
	}
	switch s.Wait {
	case "", "exec", "alive", "ready":
	default:
		return usagef("--wait %q: want exec, alive or ready", s.Wait)
	}
	if s.Port < 0 || s.Port > 65535 {
		return usagef("--port %d: want 1024-65535, or 0 for the agent's choice", s.Port)
	}
	return nil
}

func (s *spawnCmd) run(ctx context.Context, o *output, c *client.Client) error {
	req := client.SpawnRequest{JobID: s.Job, Restart: s.Restart, ModelID: s.Model, Device: s.Device, WorkerID: s.ID, WorkerType: s.Type,
		Port: s.Port, QueenURL: s.QueenURL, Wait: s.Wait}
	if s.Wait == "ready" && s.Timeout > 0 {
		// --timeout is then the agent's ready bound; the answer comes
		// after it, so the client waits a margin longer.
		req.WaitTimeout = s.Timeout
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout+readyMargin)
		defer cancel()
	}
	if s.MinFreeVRAM >= 0 {
		req.MinFreeVRAMMiB = &s.MinFreeVRAM
	}
	if s.MaxRestarts >= 0 {
		req.MaxRestarts = &s.MaxRestarts
	}
	n := narrator{o: o}
	r, err := c.Spawn(ctx, s.Hive, req, n.event)
	if err != nil {
		return n.failed(ctx, s.Hive, err)
	}
	if s.JSON {
		return o.json(r)
	}
	res := r.Result
	existing := ""
	if res.Existing {
		existing = "yes: this command had started it already"
	}
	return o.fields("worker", res.WorkerID, "hive", r.HiveID, "pid", strconv.Itoa(res.PID), "port", strconv.Itoa(res.Port),
		"device", res.Device, "type", res.WorkerType, "model", res.ModelID, "waited", res.Wait,
		"started", o.out.when(res.StartedAt), "existing", existing, "log", res.LogPath, "binary", res.BinaryPath, "job", r.JobID)
}

// stopCmd is `hive-agent stop`: delete a worker, narrating as it goes.
type stopCmd struct {
	workerArg   `embed:""`
	hiveFlag    `embed:""`
	Grace       time.Duration `name:"grace" default:"5s" help:"How long the worker has after SIGTERM before SIGKILL (0-60s)."`
	clientFlags `embed:""`
}

func (s *stopCmd) check() error {
	if s.Grace < 0 || s.Grace > maxGrace {
		return usagef("--grace %v: want 0s to 60s", s.Grace)
	}
	return s.checkIDs(&s.workerArg)
}

func (s *stopCmd) run(ctx context.Context, o *output, c *client.Client) error {
	n := narrator{o: o}
	r, err := c.Delete(ctx, s.Hive, s.Worker, s.Grace, n.event)
	if err != nil {
		return n.failed(ctx, s.Hive, err)
	}
	if s.JSON {
		return o.json(r)
	}
	res := r.Result
	pid, stopped, cancelled := "", "", ""
	if res.PID != 0 { // absent when only a pending restart was cancelled
		pid, stopped = strconv.Itoa(res.PID), (time.Duration(res.StoppedMS) * time.Millisecond).String()
	}
	if res.RestartCancelled {
		cancelled = "yes (it had failed and was waiting to be restarted)"
	}
	fields := []string{"worker", res.WorkerID, "hive", r.HiveID, "pid", pid, "signal", res.Signal,
		"stopped in", stopped, "restart cancelled", cancelled}
	if res.GPUReleased != nil && res.GPUReleaseMS != nil {
		rel := "no: tainted, processes still hold memory after " + (time.Duration(*res.GPUReleaseMS) * time.Millisecond).String()
		if *res.GPUReleased {
			rel = "yes, in " + (time.Duration(*res.GPUReleaseMS) * time.Millisecond).String()
		}
		fields = append(fields, "gpu released", rel)
	}
	return o.fields(append(fields, "job", r.JobID)...)
}

// narrator prints a job's narration and remembers its job id, so that an
// interrupted command can say where its outcome will go.
type narrator struct {
	o     *output
	jobID string
}

func (n *narrator) event(e client.Event) {
	n.jobID = e.JobID
	n.o.event(e)
}

// failed explains a job that did not succeed; the agent's own error is
// left as it is, so that stderr reads `error: <code>: <message>`.
func (n *narrator) failed(ctx context.Context, hive string, err error) error {
	if errors.Is(err, context.Canceled) && n.jobID != "" {
		n.o.warnf("hive %s carries on with job %s; its outcome goes to job.%s.result", hive, n.jobID, n.jobID)
	}
	return hiveErr(hive, err)
}

// hiveErr names the hive in an error that is not the agent's own answer.
func hiveErr(hive string, err error) error {
	var ae *client.AgentError
	if err == nil || errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf("hive %s: %w", hive, err)
}
