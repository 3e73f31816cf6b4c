package commands

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"github.com/google/uuid"

	"github.com/rbee/hive-agent/catalog"
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
	MaxRestarts      = 1000
	// MaxVRAMMiB bounds min_free_vram_mib (1 PiB).
	MaxVRAMMiB = 1 << 30
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
	// Restart and MaxRestarts override the worker type's restart policy.
	Restart     string `json:"restart"`
	MaxRestarts *int   `json:"max_restarts"`
	// MinFreeVRAMMiB refuses the spawn with insufficient_vram unless the
	// pinned GPU has this much memory free (spawn_gpu.go); it overrides
	// the type's vram_mib.
	MinFreeVRAMMiB *int64 `json:"min_free_vram_mib"`

	device spawner.Device
	// restarts, when positive, starts the worker as that restart of its
	// id (a restart command).
	restarts int
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
		return BadRequest("device", "required: %s", spawner.DeviceSyntax)
	}
	d, err := spawner.ParseDevice(c.Device)
	if err != nil {
		return BadRequest("device", "%q: want %s", c.Device, spawner.DeviceSyntax)
	}
	c.device = d
	if c.WorkerID == "" {
		c.WorkerID = "worker-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
	} else if err := subjects.ValidToken(c.WorkerID); err != nil {
		return BadRequest("worker_id", "%q %v", c.WorkerID, err)
	}
	// Which types exist is the catalog's to say, when the command runs;
	// the name travels in events and markers, so it must be a token.
	if c.WorkerType != "" {
		if err := subjects.ValidToken(c.WorkerType); err != nil {
			return BadRequest("worker_type", "%q %v", c.WorkerType, err)
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
	switch c.Restart {
	case "", catalog.RestartNo, catalog.RestartOnFailure:
	default:
		return BadRequest("restart", "%q: want \"no\" or \"on-failure\"", c.Restart)
	}
	if c.MaxRestarts != nil && (*c.MaxRestarts < 0 || *c.MaxRestarts > MaxRestarts) {
		return BadRequest("max_restarts", "%d: want 0-%d", *c.MaxRestarts, MaxRestarts)
	}
	if c.MinFreeVRAMMiB != nil {
		if *c.MinFreeVRAMMiB < 0 || *c.MinFreeVRAMMiB > MaxVRAMMiB {
			return BadRequest("min_free_vram_mib", "%d: want 0-%d", *c.MinFreeVRAMMiB, MaxVRAMMiB)
		}
		if *c.MinFreeVRAMMiB > 0 && d.Type != spawner.CUDA {
			return BadRequest("min_free_vram_mib", "only a GPU device (cuda:N, GPU-N, GPU-<uuid>) has VRAM; %s has none", c.Device)
		}
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

// interrupted explains a wait cut short by the agent itself (shutdown):
// the worker was started and is left running.
func interrupted(err error, h *spawner.Handle) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeNotReady, Message: fmt.Sprintf(
			"the agent stopped waiting (%v); worker %s (pid %d) was started and is left running", err, h.WorkerID, h.PID)}
	}
	return err
}
