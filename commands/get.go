package commands

import (
	"context"
	"fmt"

	"github.com/rbee/hive-agent/spawner"
)

// Limits of log_lines.
const (
	DefaultLogLines = 50
	MaxLogLines     = 1000
)

// Get reports one worker with the tail of its log.
type Get struct {
	Envelope
	WorkerID string `json:"worker_id"`
	LogLines *int   `json:"log_lines"`
}

// Kind is worker.get.
func (c *Get) Kind() string        { return KindGet }
func (c *Get) envelope() *Envelope { return &c.Envelope }

func (c *Get) validate() *Error {
	if e := requireWorkerID(c.WorkerID); e != nil {
		return e
	}
	if c.LogLines == nil {
		n := DefaultLogLines
		c.LogLines = &n
	} else if *c.LogLines < 0 || *c.LogLines > MaxLogLines {
		return BadRequest("log_lines", "%d: want 0-%d", *c.LogLines, MaxLogLines)
	}
	return nil
}

// GetResult is the result of a get.
type GetResult struct {
	WorkerInfo
	LogTail []string `json:"log_tail"`
}

// Execute finds the worker and reads its log tail.
func (c *Get) Execute(ctx context.Context, d Deps) (any, error) {
	w, err := d.Spawner.Find(ctx, c.WorkerID)
	if err != nil {
		return nil, err
	}
	tail, err := d.Spawner.WorkerLogTail(w, *c.LogLines)
	if err != nil {
		return nil, fmt.Errorf("read log of worker %s: %w", w.WorkerID, err)
	}
	vram := d.GPU.usage(ctx, []spawner.Worker{w})
	return GetResult{WorkerInfo: withVRAM(runningInfo(d.Spawner, w, d.now()), vram), LogTail: tail}, nil
}
