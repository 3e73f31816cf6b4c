package commands

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/subjects"
)

// Wait modes of a spawn.
const (
	WaitExec  = "exec"
	WaitAlive = "alive"
	WaitReady = "ready"
)

// Limits on spawn fields.
const (
	MaxModelIDLen    = 512
	MaxWaitTimeoutMS = 3_600_000
)

// Spawn starts a worker.
type Spawn struct {
	Envelope
	ModelID       string `json:"model_id"`
	Device        string `json:"device"`
	WorkerID      string `json:"worker_id"`
	WorkerType    string `json:"worker_type"`
	Port          int    `json:"port"`
	QueenURL      string `json:"queen_url"`
	Wait          string `json:"wait"`
	WaitTimeoutMS *int64 `json:"wait_timeout_ms"`

	device spawner.Device
}

// Kind is worker.spawn.
func (c *Spawn) Kind() string        { return KindSpawn }
func (c *Spawn) envelope() *Envelope { return &c.Envelope }

func (c *Spawn) validate() *Error {
	switch {
	case c.ModelID == "":
		return BadRequest("model_id", "required, e.g. \"meta-llama/Llama-3-8b\"")
	case strings.HasPrefix(c.ModelID, "-"):
		return BadRequest("model_id", "must not start with '-'")
	case len(c.ModelID) > MaxModelIDLen:
		return BadRequest("model_id", "longer than %d bytes", MaxModelIDLen)
	case strings.IndexFunc(c.ModelID, unicode.IsControl) >= 0:
		return BadRequest("model_id", "contains a control character")
	}
	if c.Device == "" {
		return BadRequest("device", "required: cpu, CPU-N, cuda:N, GPU-N or metal")
	}
	d, err := spawner.ParseDevice(c.Device)
	if err != nil {
		return BadRequest("device", "%q: want cpu, CPU-N, cuda:N, GPU-N or metal", c.Device)
	}
	c.device = d
	if c.WorkerID == "" {
		c.WorkerID = "worker-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
	} else if err := subjects.ValidToken(c.WorkerID); err != nil {
		return BadRequest("worker_id", "%q %v", c.WorkerID, err)
	}
	if c.WorkerType != "" {
		switch spawner.WorkerType(c.WorkerType) {
		case spawner.CPU, spawner.CUDA, spawner.Metal:
		default:
			return BadRequest("worker_type", "%q: want cpu-llm, cuda-llm or metal-llm", c.WorkerType)
		}
		if spawner.WorkerType(c.WorkerType) != d.Type {
			return BadRequest("worker_type", "%q does not match device %q (which needs %s)", c.WorkerType, c.Device, d.Type)
		}
	}
	if c.Port != 0 && (c.Port < 1024 || c.Port > 65535) {
		return BadRequest("port", "%d: want 1024-65535, or 0 to let the agent choose", c.Port)
	}
	if c.QueenURL != "" {
		if err := checkURL(c.QueenURL); err != nil {
			return BadRequest("queen_url", "%v", err)
		}
	}
	switch c.Wait {
	case "", WaitExec, WaitAlive, WaitReady:
	default:
		return BadRequest("wait", "%q: want exec, alive or ready", c.Wait)
	}
	if c.WaitTimeoutMS != nil && (*c.WaitTimeoutMS < 1 || *c.WaitTimeoutMS > MaxWaitTimeoutMS) {
		return BadRequest("wait_timeout_ms", "%d: want 1-%d", *c.WaitTimeoutMS, MaxWaitTimeoutMS)
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	return nil
}

// SpawnResult is the result of a spawn.
type SpawnResult struct {
	WorkerID   string `json:"worker_id"`
	PID        int    `json:"pid"`
	Port       int    `json:"port"`
	Device     string `json:"device"`
	WorkerType string `json:"worker_type"`
	ModelID    string `json:"model_id"`
	BinaryPath string `json:"binary_path"`
	LogPath    string `json:"log_path"`
	StartedAt  string `json:"started_at"`
	// Wait is the wait mode the reply waited for.
	Wait string `json:"wait"`
	// Existing is true when this was a resend of the command that started
	// the running worker: nothing new was started.
	Existing bool `json:"existing,omitempty"`
}

func spawnResultOf(w spawner.Worker, wait string, existing bool) SpawnResult {
	return SpawnResult{
		WorkerID: w.WorkerID, PID: w.PID, Port: w.Port, Device: w.Device, WorkerType: string(w.WorkerType),
		ModelID: w.ModelID, BinaryPath: w.BinaryPath, LogPath: w.LogPath,
		StartedAt: FormatTime(w.StartedAt()), Wait: wait, Existing: existing,
	}
}

// Execute checks the device, resolves the binary, starts the worker and
// waits as asked.
func (c *Spawn) Execute(ctx context.Context, d Deps) (any, error) {
	n := d.Narrator
	wait := c.Wait
	if wait == "" {
		wait = d.Defaults.Wait
	}
	if err := d.Spawner.CheckDevice(c.device); err != nil {
		return nil, err
	}
	bin, err := d.Spawner.Resolve(c.device.Type)
	if err != nil {
		return nil, err
	}
	n.Narrate("worker_binary_resolved", LevelInfo,
		fmt.Sprintf("Using %s worker binary %s for device %s.", c.device.Type, bin, c.Device), Fields{WorkerID: c.WorkerID})
	queen := c.QueenURL
	if queen == "" {
		queen = d.Defaults.QueenURL
	}
	h, err := d.Spawner.Start(ctx, spawner.Spec{
		WorkerID: c.WorkerID, ModelID: c.ModelID, Device: c.device, BinaryPath: bin,
		Port: c.Port, QueenURL: queen, JobID: c.JobID, CommandID: c.CommandID,
	})
	var running *spawner.RunningError
	if errors.As(err, &running) && running.Worker.CommandID == c.CommandID &&
		running.Worker.ModelID == c.ModelID && running.Worker.Device == c.Device {
		w := running.Worker
		n.Narrate("worker_already_running", LevelInfo,
			fmt.Sprintf("Worker %s is already running as pid %d, started by this same command %s; nothing new was started and nothing waited for (the first command's outcome goes to job.%s.result).",
				w.WorkerID, w.PID, c.CommandID, w.JobID), Fields{WorkerID: w.WorkerID, PID: w.PID})
		return spawnResultOf(w, WaitExec, true), nil
	}
	if err != nil {
		return nil, err
	}
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
		timeout := d.Defaults.ReadyTimeout
		if c.WaitTimeoutMS != nil {
			timeout = time.Duration(*c.WaitTimeoutMS) * time.Millisecond
		}
		n.Narrate("worker_waiting_ready", LevelInfo,
			fmt.Sprintf("Waiting up to %s for %s to answer 200.", timeout, h.HealthURL()), Fields{WorkerID: h.WorkerID, PID: h.PID})
		if err := h.WaitReady(ctx, timeout); err != nil {
			return nil, interrupted(err, h)
		}
		n.Narrate("worker_ready", LevelInfo,
			fmt.Sprintf("Worker %s answers on %s.", h.WorkerID, h.HealthURL()), Fields{WorkerID: h.WorkerID, PID: h.PID})
	}
	return spawnResultOf(h.Worker, wait, false), nil
}

// interrupted explains a wait cut short by the agent itself (shutdown):
// the worker was started and is left running.
func interrupted(err error, h *spawner.Handle) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeNotReady, Message: fmt.Sprintf(
			"the agent stopped waiting (%v); worker %s (pid %d) was started and is left running", err, h.WorkerID, h.PID)}
	}
	return err
}
