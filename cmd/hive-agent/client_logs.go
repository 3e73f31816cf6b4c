package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/wire"
)

// logsCmd is `hive-agent logs`: a worker's log tail, or its log followed.
type logsCmd struct {
	workerArg   `embed:""`
	hiveFlag    `embed:""`
	Lines       int  `name:"lines" short:"n" default:"50" help:"How many of the last lines to show first (0-1000)."`
	Follow      bool `name:"follow" short:"f" help:"Keep printing what the worker writes, until Ctrl-C or the worker exits."`
	Timestamps  bool `name:"timestamps" short:"t" help:"With -f: begin each line with the time it was read (RFC 3339); a worker's log file holds no times of its own."`
	clientFlags `embed:""`
}

func (l *logsCmd) check() error {
	if l.Lines < 0 || l.Lines > maxLogLines {
		return usagef("--lines %d: want 0 to %d", l.Lines, maxLogLines)
	}
	if l.Follow && l.JSON {
		return usagef("--follow and --json can't be used together")
	}
	if l.Timestamps && !l.Follow {
		return usagef("--timestamps needs --follow: a worker's log file holds no times, only a follower sees when lines arrive")
	}
	return l.checkIDs(&l.workerArg)
}

func (l *logsCmd) run(ctx context.Context, o *output, c *client.Client) error {
	if l.Follow {
		return l.follow(ctx, o, c)
	}
	res, err := c.Logs(ctx, l.Hive, l.Worker, client.LastLines(l.Lines))
	if client.IsCode(err, wire.CodeUnknownCommand) {
		return l.fromGet(ctx, o, c)
	}
	if err != nil {
		return hiveErr(l.Hive, err)
	}
	if l.JSON {
		return o.json(res)
	}
	printLines(o, res.Lines)
	return nil
}

// fromGet reads the log tail through worker.get, for an agent older than
// worker.logs (protocol v1.1).
func (l *logsCmd) fromGet(ctx context.Context, o *output, c *client.Client) error {
	o.warnf("hive %s has no worker.logs (an agent older than protocol v1.1); showing the log tail of worker.get", l.Hive)
	d, err := c.Get(ctx, l.Hive, l.Worker, l.Lines)
	if err != nil {
		return hiveErr(l.Hive, err)
	}
	if l.JSON {
		return o.json(map[string]any{"worker_id": d.WorkerID, "log_path": d.LogPath, "lines": d.LogTail})
	}
	printLines(o, d.LogTail)
	return nil
}

// follow prints the last lines, then every line the worker writes, until
// Ctrl-C (a normal end: exit 0) or the worker is gone.
func (l *logsCmd) follow(ctx context.Context, o *output, c *client.Client) error {
	err := c.Follow(ctx, l.Hive, l.Worker, l.Lines, func(lines []string) {
		if l.Timestamps {
			now := time.Now().Format(time.RFC3339Nano)
			for i, line := range lines {
				lines[i] = now + " " + line
			}
		}
		printLines(o, lines)
	})
	switch {
	case client.IsCode(err, wire.CodeUnknownCommand):
		o.errorf("%v", err)
		o.warnf("hive %s cannot follow logs (an agent older than protocol v1.1); `hive-agent logs %s --hive %s` without -f shows the tail",
			l.Hive, l.Worker, l.Hive)
		return exitError{exitFailure}
	case err != nil:
		return hiveErr(l.Hive, err)
	case ctx.Err() == nil:
		fmt.Fprintf(o.stderr, "worker %s of hive %s is gone; stopped following\n", l.Worker, l.Hive)
	}
	return nil
}

func printLines(o *output, lines []string) {
	for _, line := range lines {
		fmt.Fprintln(o.stdout, line)
	}
}
