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
	Lines       int    `name:"lines" short:"n" default:"50" help:"How many of the last lines to show first (0-1000)."`
	Follow      bool   `name:"follow" short:"f" help:"Keep printing what the worker writes, until Ctrl-C or the worker exits."`
	Since       string `name:"since" placeholder:"AGE|TIME" help:"Show what the worker wrote since then (10m, or an RFC 3339 time) instead of the last lines; approximate: the agent notes each log's size every 2 s, so up to 2 s of older lines may come along."`
	Timestamps  bool   `name:"timestamps" short:"t" help:"With -f: begin each line with the time it was read (RFC 3339); a worker's log file holds no times of its own."`
	clientFlags `embed:""`
}

func (l *logsCmd) check() error {
	if l.Lines < 0 || l.Lines > maxLogLines {
		return usagef("--lines %d: want 0 to %d", l.Lines, maxLogLines)
	}
	if l.Follow && l.JSON {
		return usagef("--follow and --json can't be used together")
	}
	if l.Since != "" {
		if _, err := parseSince(l.Since, time.Now()); err != nil {
			return err
		}
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
	if l.Since != "" {
		return l.since(ctx, o, c)
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
	first := client.LastLines(l.Lines)
	if l.Since != "" {
		t, _ := parseSince(l.Since, time.Now()) // checked in check
		first = client.Since(t)
	}
	err := c.FollowFrom(ctx, l.Hive, l.Worker, first, func(lines []string) {
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

// since prints everything the worker wrote since --since, reading on from
// each returned offset until the log's end as the agent saw it.
func (l *logsCmd) since(ctx context.Context, o *output, c *client.Client) error {
	t, _ := parseSince(l.Since, time.Now()) // checked in check
	res, err := c.Logs(ctx, l.Hive, l.Worker, client.Since(t))
	if err != nil {
		return hiveErr(l.Hive, err)
	}
	all := res
	for res.Offset < res.Size && len(res.Lines) > 0 {
		if res, err = c.Logs(ctx, l.Hive, l.Worker, client.FromOffset(res.Offset)); err != nil {
			return hiveErr(l.Hive, err)
		}
		all.Lines = append(all.Lines, res.Lines...)
		all.Offset, all.Size, all.Truncated, all.Running = res.Offset, res.Size, res.Truncated, res.Running
	}
	if l.JSON {
		return o.json(all)
	}
	printLines(o, all.Lines)
	return nil
}

// parseSince reads --since: an age before now (10m, 1h30m) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since %q: want an age like 10m or 1h30m, or an RFC 3339 time like 2026-12-03T10:00:00Z", s)
}
