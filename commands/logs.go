package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// Limits of a logs read.
const (
	DefaultLogReadLines = 50
	MaxLogReadLines     = 1000
	DefaultLogMaxBytes  = spawner.DefaultLogReadBytes
	MaxLogMaxBytes      = spawner.MaxLogReadBytes
)

// Logs reads a worker's log: its last lines, or what was written after an
// offset a previous read returned, so that a caller can follow the log by
// polling without the agent holding anything open.
type Logs struct {
	wire.LogsRequest
}

// Kind is worker.logs.
func (c *Logs) Kind() string             { return wire.KindLogs }
func (c *Logs) envelope() *wire.Envelope { return &c.Envelope }

func (c *Logs) validate() *wire.Error {
	if e := requireWorkerID(c.WorkerID); e != nil {
		return e
	}
	switch {
	case c.Lines != nil && c.Offset != nil:
		return BadRequest("offset", "give lines (the last N lines) or offset (follow from there), not both")
	case c.SinceMS != nil && c.Offset != nil:
		return BadRequest("since_ms", "give since_ms (read from a time) or offset (follow from there), not both")
	case c.SinceMS != nil && c.Lines != nil:
		return BadRequest("since_ms", "give since_ms (everything since a time, up to max_bytes) or lines (the last N lines), not both")
	case c.SinceMS != nil && *c.SinceMS < 0:
		return BadRequest("since_ms", "%d: want a Unix time in milliseconds", *c.SinceMS)
	case c.Lines != nil && (*c.Lines < 0 || *c.Lines > MaxLogReadLines):
		return BadRequest("lines", "%d: want 0-%d", *c.Lines, MaxLogReadLines)
	case c.Offset != nil && *c.Offset < 0:
		return BadRequest("offset", "%d: want 0 or more, a value an earlier read returned", *c.Offset)
	case c.MaxBytes != nil && c.Offset == nil && c.SinceMS == nil:
		return BadRequest("max_bytes", "only applies with offset or since_ms; a lines read is bounded by lines")
	case c.MaxBytes != nil && (*c.MaxBytes < 1 || *c.MaxBytes > MaxLogMaxBytes):
		return BadRequest("max_bytes", "%d: want 1-%d", *c.MaxBytes, MaxLogMaxBytes)
	}
	if c.Offset == nil && c.Lines == nil && c.SinceMS == nil {
		n := DefaultLogReadLines
		c.Lines = &n
	}
	if (c.Offset != nil || c.SinceMS != nil) && c.MaxBytes == nil {
		m := int64(DefaultLogMaxBytes)
		c.MaxBytes = &m
	}
	return nil
}

// Execute reads the log of the running worker, or, when none runs with
// that id, the log a worker of that id left behind.
func (c *Logs) Execute(ctx context.Context, d Deps) (any, error) {
	w, err := d.Spawner.Find(ctx, c.WorkerID)
	running := err == nil
	if errors.Is(err, spawner.ErrWorkerNotFound) {
		w = spawner.Worker{WorkerID: c.WorkerID, LogPath: d.Spawner.LogPathOf(c.WorkerID)}
	} else if err != nil {
		return nil, err
	}
	q := spawner.LogQuery{From: c.Offset}
	if c.Lines != nil {
		q.Lines = *c.Lines
	}
	if c.MaxBytes != nil {
		q.MaxBytes = *c.MaxBytes
	}
	if c.SinceMS != nil {
		t := time.UnixMilli(*c.SinceMS)
		q.Since = &t
	}
	if d.MaxResultBytes > 0 {
		// What the result takes besides its lines, with the largest offset and size.
		rest, _ := json.Marshal(wire.LogsResult{WorkerID: c.WorkerID, LogPath: w.LogPath, Lines: []string{},
			Offset: math.MaxInt64, Size: math.MaxInt64, Truncated: true, Running: true})
		q.MaxJSON = max(d.MaxResultBytes-int64(len(rest))+2, 3)
	}
	r, err := d.Spawner.ReadLog(w, q)
	if err != nil {
		return nil, fmt.Errorf("read log of worker %s: %w", c.WorkerID, err)
	}
	if !running && r.Missing {
		return nil, fmt.Errorf("%w: no worker %q runs on this hive and none left a log", spawner.ErrWorkerNotFound, c.WorkerID)
	}
	if r.Truncated {
		d.Narrator.Narrate("worker_log_truncated", wire.LevelWarn, fmt.Sprintf(
			"The log of worker %s is %d bytes, shorter than offset %d (rotated or truncated); reading restarted at 0.",
			c.WorkerID, r.Size, *c.Offset), Fields{WorkerID: w.WorkerID, PID: w.PID})
	}
	return wire.LogsResult{WorkerID: c.WorkerID, LogPath: r.Path, Lines: r.Lines, Offset: r.Offset, Size: r.Size, Truncated: r.Truncated, Running: running}, nil
}
