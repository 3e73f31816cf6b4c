package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/spawner"
)

// kinds maps the spawner's device types to catalog device kinds.
var kinds = map[spawner.WorkerType]string{
	spawner.CPU: catalog.KindCPU, spawner.CUDA: catalog.KindCUDA, spawner.Metal: catalog.KindMetal,
}

// workerType picks the spawn's catalog type: an unknown name is a bad
// request naming the known ones; a type that does not run on the device's
// kind is device_unavailable.
func (c *Spawn) workerType(cat *catalog.Catalog) (catalog.Type, error) {
	typ, err := cat.Lookup(c.WorkerType, kinds[c.device.Type])
	var unknown *catalog.UnknownTypeError
	switch {
	case errors.As(err, &unknown):
		return typ, BadRequest("worker_type", "%q is not in the catalog; known types: %s", unknown.Name, strings.Join(unknown.Known, ", "))
	case errors.Is(err, catalog.ErrDeviceNotAccepted):
		return typ, &Error{Code: CodeDeviceUnavailable, Message: fmt.Sprintf("%s: %v", c.Device, err)}
	}
	return typ, err
}

// params are the spawn's values for the type's templates.
func (c *Spawn) params(hiveID, queen string, port int) catalog.Params {
	return catalog.Params{
		WorkerID: c.WorkerID, ModelID: c.ModelID, Port: port, Device: c.Device, DeviceIndex: c.device.Index,
		QueenURL: queen, HiveID: hiveID, AgentVisibleDevices: os.Getenv(catalog.CUDAVisibleDevices),
	}
}

// Execute picks the worker type, checks the device, resolves the binary,
// starts the worker and waits as asked.
func (c *Spawn) Execute(ctx context.Context, d Deps) (any, error) {
	n := d.Narrator
	cat := d.Catalog
	if cat == nil {
		cat = catalog.Builtin()
	}
	typ, err := c.workerType(cat)
	if err != nil {
		return nil, err
	}
	wait := firstOf(c.Wait, typ.Wait, d.Defaults.Wait)
	queen := firstOf(c.QueenURL, d.Defaults.QueenURL)
	// The device first: a GPU the agent cannot see is device_unavailable,
	// not a template that cannot pin it.
	if err := d.Spawner.CheckDevice(c.device); err != nil {
		return nil, err
	}
	// A template that cannot be filled in (e.g. {device_index} on cpu) is
	// the request's fault, and is found before anything is started.
	if _, _, err := typ.Render(c.params(d.Spawner.HiveID(), queen, max(c.Port, 1024))); err != nil {
		return nil, BadRequest("worker_type", "%v", err)
	}
	bin, err := d.Spawner.Resolve(typ.Binary)
	if err != nil {
		return nil, err
	}
	ask := int64(typ.VRAMMiB)
	if c.MinFreeVRAMMiB != nil {
		ask = *c.MinFreeVRAMMiB
	}
	if err := d.GPU.admit(ctx, c.WorkerID, c.device, ask); err != nil {
		return nil, err
	}
	n.Narrate("worker_binary_resolved", LevelInfo,
		fmt.Sprintf("Using %s worker binary %s for device %s.", typ.Name, bin, c.Device), Fields{WorkerID: c.WorkerID})
	hiveID := d.Spawner.HiveID()
	h, err := d.Spawner.Start(ctx, spawner.Spec{
		WorkerID: c.WorkerID, ModelID: c.ModelID, Device: c.device, BinaryPath: bin,
		Port: c.Port, QueenURL: queen, JobID: c.JobID, CommandID: c.CommandID,
		WorkerType: spawner.WorkerType(typ.Name), HealthPath: typ.HealthPath, ReadyStatus: typ.ReadyStatus,
		Command: func(port int) ([]string, []string, error) { return typ.Render(c.params(hiveID, queen, port)) },
		Restart: c.restartPolicy(typ),
	}.WithRestarts(c.restarts))
	if err != nil {
		d.GPU.abandon(c.WorkerID)
	} else {
		d.GPU.started(h.Worker)
	}
	var running *spawner.RunningError
	if errors.As(err, &running) && running.Worker.CommandID == c.CommandID &&
		running.Worker.ModelID == c.ModelID && running.Worker.Device == c.Device {
		return c.resent(ctx, d, typ, running.Worker, wait)
	}
	if err != nil {
		return nil, err
	}
	defer h.Settle() // past its wait, whatever the outcome
	// worker_process_started is narrated by the spawner's OnStart hook, so
	// that it always comes before a worker_exited of the same worker.
	switch wait {
	case WaitAlive:
		if err := h.WaitAlive(ctx, d.Defaults.AliveWindow); err != nil {
			return nil, interrupted(err, h)
		}
		n.Narrate("worker_alive", LevelInfo,
			fmt.Sprintf("Worker %s stayed up for %s.", h.WorkerID, d.Defaults.AliveWindow), Fields{WorkerID: h.WorkerID, PID: h.PID})
	case WaitReady:
		if err := c.waitReady(ctx, d, typ, h); err != nil {
			return nil, err
		}
	}
	return spawnResultOf(h.Worker, wait, false), nil
}

// waitReady waits for the worker's health endpoint, narrating progress
// while the worker loads.
func (c *Spawn) waitReady(ctx context.Context, d Deps, typ catalog.Type, h *spawner.Handle) error {
	n := d.Narrator
	timeout := d.Defaults.ReadyTimeout
	if typ.ReadyTimeout > 0 {
		timeout = typ.ReadyTimeout
	}
	if c.WaitTimeoutMS != nil {
		timeout = time.Duration(*c.WaitTimeoutMS) * time.Millisecond
	}
	stall := ""
	if typ.StallTimeout > 0 {
		stall = fmt.Sprintf(" (or until it shows no progress for %s)", typ.StallTimeout)
	}
	n.Narrate("worker_waiting_ready", LevelInfo,
		fmt.Sprintf("Waiting up to %s for %s to answer %d%s.", timeout, h.HealthURL(), h.ReadyStatus, stall), Fields{WorkerID: h.WorkerID, PID: h.PID})
	err := h.WaitReadyFor(ctx, spawner.ReadyWait{
		Timeout: timeout, StallTimeout: typ.StallTimeout, LoadingStatus: typ.LoadingStatus,
		ProgressEvery: d.Defaults.ProgressInterval,
		OnProgress: func(elapsed time.Duration, line string) {
			msg := fmt.Sprintf("Worker %s is still loading after %s.", h.WorkerID, elapsed.Round(time.Second))
			if line != "" {
				msg += " Last log line: " + line
			}
			n.Narrate("worker_loading", LevelInfo, msg, Fields{WorkerID: h.WorkerID, PID: h.PID})
		},
	})
	if err != nil {
		return interrupted(err, h)
	}
	n.Narrate("worker_ready", LevelInfo,
		fmt.Sprintf("Worker %s answers on %s.", h.WorkerID, h.HealthURL()), Fields{WorkerID: h.WorkerID, PID: h.PID})
	return nil
}

// restartPolicy is the type's restart policy with the request's overrides.
func (c *Spawn) restartPolicy(typ catalog.Type) spawner.RestartPolicy {
	// Max is kept under "no" too: restarts on unhealthy count against it.
	p := spawner.RestartPolicy{OnFailure: firstOf(c.Restart, typ.Restart) == catalog.RestartOnFailure, Max: typ.MaxRestarts}
	if c.MaxRestarts != nil {
		p.Max = *c.MaxRestarts
	}
	return p
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
