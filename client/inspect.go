package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// logsCommand is the command token of worker.logs (PROTOCOL v1.1).
const logsCommand = "logs"

// List returns the workers of hive, each with HiveID set, in natural
// order of their ids.
func (c *Client) List(ctx context.Context, hive string) ([]Worker, error) {
	return c.ListWith(ctx, hive, ListOptions{})
}

// ListWith is List with options (ListOptions.Exited: recently exited
// workers too).
func (c *Client) ListWith(ctx context.Context, hive string, o ListOptions) ([]Worker, error) {
	r, err := request[wire.ListResult](ctx, c, hive, subjects.List, o.wire())
	if err != nil {
		return nil, err
	}
	ws := make([]Worker, len(r.Result.Workers))
	for i, w := range r.Result.Workers {
		ws[i] = Worker{HiveID: r.HiveID, WorkerInfo: w}
	}
	SortWorkers(ws)
	return ws, nil
}

// Get returns worker workerID of hive with the last logLines lines of its
// log (a negative logLines leaves it to the agent, 50).
func (c *Client) Get(ctx context.Context, hive, workerID string, logLines int) (WorkerDetail, error) {
	b := wire.GetRequest{WorkerID: workerID}
	if logLines >= 0 {
		b.LogLines = &logLines
	}
	r, err := request[wire.GetResult](ctx, c, hive, subjects.Get, b)
	if err != nil {
		return WorkerDetail{}, err
	}
	if r.Result.LogTail == nil {
		r.Result.LogTail = []string{}
	}
	return WorkerDetail{HiveID: r.HiveID, GetResult: r.Result}, nil
}

// Logs reads worker workerID's log once, through worker.logs.
func (c *Client) Logs(ctx context.Context, hive, workerID string, req LogsRequest) (LogsResult, error) {
	if n := btoi(req.Lines != nil) + btoi(req.Offset != nil) + btoi(req.SinceMS != nil); n > 1 {
		return LogsResult{}, fmt.Errorf("%w: logs: lines, offset and since are exclusive", ErrInvalid)
	}
	r, err := request[LogsResult](ctx, c, hive, logsCommand, req.wire(workerID))
	if err != nil {
		return LogsResult{}, err
	}
	return r.Result, nil
}

// Follow hands onLines the last fromLines lines of worker workerID's log,
// then everything written to it after them, polling worker.logs with the
// offset each answer returns (see WithPollInterval). It returns nil when
// ctx ends, or the worker is gone (no longer running, or not_found) and
// its log was read to the end; an unknown
// worker on the first read and any other error end it with the error.
// Each call has the client's timeout on its own, whatever ctx allows.
func (c *Client) Follow(ctx context.Context, hive, workerID string, fromLines int, onLines func([]string)) error {
	return c.FollowFrom(ctx, hive, workerID, LastLines(fromLines), onLines)
}

// FollowFrom is Follow starting with the read first (LastLines or Since)
// instead of the last lines.
func (c *Client) FollowFrom(ctx context.Context, hive, workerID string, first LogsRequest, onLines func([]string)) error {
	res, err := c.followRead(ctx, hive, workerID, first)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if len(res.Lines) > 0 {
		onLines(res.Lines)
	}
	tick := time.NewTicker(c.pollInterval)
	defer tick.Stop()
	prev := int64(-1)
	for {
		// A read that stopped short of the size it saw means more is
		// waiting: read again without a pause (while it makes progress).
		more := res.Offset < res.Size && res.Offset > prev
		if !res.Running && !more {
			return nil // the worker is gone and its log was read to the end
		}
		prev = res.Offset
		if !more {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		res, err = c.followRead(ctx, hive, workerID, FromOffset(res.Offset))
		if done, err := followEnd(ctx, err); done {
			return err
		}
		if len(res.Lines) > 0 {
			onLines(res.Lines)
		}
	}
}

// followRead is one read of Follow, bounded by the client's timeout even
// when ctx has no end (a follow runs until Ctrl-C).
func (c *Client) followRead(ctx context.Context, hive, workerID string, req LogsRequest) (LogsResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.Logs(ctx, hive, workerID, req)
}

// followEnd reports whether a read ends the follow, and with which error.
func followEnd(ctx context.Context, err error) (bool, error) {
	switch {
	case err == nil:
		return false, nil
	case ctx.Err() != nil, IsCode(err, wire.CodeNotFound):
		return true, nil
	case errors.Is(err, context.Canceled):
		return true, nil
	}
	return true, err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
