package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/rbee/hive-agent/client"
)

// maxLogLines is the agent's largest log_lines and lines (PROTOCOL.md).
const maxLogLines = 1000

// lsCmd is `hive-agent ls`: the workers of one hive, or of every hive.
type lsCmd struct {
	Hive        string `name:"hive" short:"H" env:"HIVE_ID" help:"The hive to list (its agent's --hive-id). Without it (and without HIVE_ID): every hive."`
	All         bool   `name:"all" short:"a" help:"List every hive that answers discovery (it wins over --hive and HIVE_ID), with the workers that exited recently."`
	Exited      bool   `name:"exited" short:"x" help:"Also list the workers that exited within the agent's --exited-ttl (implied by --all)."`
	clientFlags `embed:""`
}

func (l *lsCmd) check() error {
	if l.Hive != "" && !l.All {
		return checkToken("--hive", l.Hive)
	}
	return nil
}

func (l *lsCmd) run(ctx context.Context, o *output, c *client.Client) error {
	var failed []client.HiveError
	var workers []client.Worker
	var err error
	opts := client.ListOptions{Exited: l.All || l.Exited}
	if l.Hive != "" && !l.All {
		workers, err = c.ListWith(ctx, l.Hive, opts)
		err = hiveErr(l.Hive, err)
	} else {
		workers, failed, err = c.ListAllWith(ctx, opts)
		if emptyFleet(o, err) {
			workers, err = []client.Worker{}, nil
		}
	}
	if err != nil {
		return err
	}
	if l.JSON {
		err = o.json(struct {
			Workers []client.Worker `json:"workers"`
		}{workers})
	} else {
		err = o.table(func(w io.Writer) error { return client.WriteTable(w, workers) })
	}
	if err != nil {
		return err
	}
	return reportHives(o, failed)
}

// reportHives writes each hive that did not answer to stderr, after what
// the others answered; the exit status is the worst of them: 1 when an
// agent answered an error, otherwise 3.
func reportHives(o *output, failed []client.HiveError) error {
	code := exitOK
	for _, f := range failed {
		o.errorf("%v", f)
		if errors.Is(f.Err, client.ErrNoAgent) {
			code = max(code, exitNoAgent)
		} else {
			code = max(code, exitFailure)
		}
	}
	if code == exitOK {
		return nil
	}
	return exitError{code}
}

// getCmd is `hive-agent get`: one worker and its log tail.
type getCmd struct {
	workerArg   `embed:""`
	hiveFlag    `embed:""`
	Lines       int `name:"lines" short:"n" default:"50" help:"How many of the last log lines to show (0-1000)."`
	clientFlags `embed:""`
}

func (g *getCmd) check() error {
	if g.Lines < 0 || g.Lines > maxLogLines {
		return usagef("--lines %d: want 0 to %d", g.Lines, maxLogLines)
	}
	return g.checkIDs(&g.workerArg)
}

func (g *getCmd) run(ctx context.Context, o *output, c *client.Client) error {
	d, err := c.Get(ctx, g.Hive, g.Worker, g.Lines)
	if err != nil {
		return hiveErr(g.Hive, err)
	}
	if g.JSON {
		return o.json(d)
	}
	err = o.fields("worker", d.WorkerID, "hive", d.HiveID, "pid", strconv.Itoa(d.PID), "port", strconv.Itoa(d.Port),
		"device", d.Device, "type", d.WorkerType, "model", d.ModelID, "started", o.out.when(d.StartedAt.Time),
		"uptime", client.HumanDuration(d.Uptime()), "memory", client.HumanBytes(d.RSSBytes),
		"job", d.JobID, "log", d.LogPath, "binary", d.BinaryPath)
	if err != nil || len(d.LogTail) == 0 {
		return err
	}
	head := fmt.Sprintf("last %d log lines:", len(d.LogTail))
	if len(d.LogTail) == 1 {
		head = "last log line:"
	}
	fmt.Fprintf(o.stdout, "\n%s\n", o.out.paint(ansiBold, head))
	for _, line := range d.LogTail {
		fmt.Fprintln(o.stdout, "  "+line)
	}
	return nil
}

// hivesCmd is `hive-agent hives`: every agent on the NATS system.
type hivesCmd struct {
	Stale       time.Duration `name:"stale" default:"1h" help:"Also list the hives whose heartbeat HIVE_EVENTS stored within this window and that do not answer now, marked stale."`
	domainFlag  `embed:""`
	clientFlags `embed:""`
	GPUs        bool `name:"gpus" help:"One row per GPU: memory total, used and free, and whether it is tainted."`
}

func (h *hivesCmd) check() error {
	if h.Stale <= 0 {
		return usagef("--stale %v: want a positive duration such as 30m or 24h", h.Stale)
	}
	if err := checkDomain(h.JetStreamDomain); err != nil {
		return usagef("%v", err)
	}
	return nil
}

func (h *hivesCmd) run(ctx context.Context, o *output, c *client.Client) error {
	hives, hidden, err := c.Fleet(ctx, h.Stale)
	if hidden != nil {
		fmt.Fprintf(o.stderr, "note: only the agents that answer now are listed; hives that stopped answering cannot be shown (%v)\n", hidden)
	}
	if emptyFleet(o, err) {
		hives, err = []client.HiveInfo{}, nil
	}
	if err != nil {
		return err
	}
	if h.JSON {
		err = o.json(struct {
			Hives []client.HiveInfo `json:"hives"`
		}{hives})
	} else {
		err = o.table(func(w io.Writer) error {
			if h.GPUs {
				return client.WriteHiveGPUs(w, hives)
			}
			return client.WriteHives(w, hives)
		})
	}
	if err != nil {
		return err
	}
	code := exitOK
	// Nobody at all is an empty fleet (exit 0); only stale hives mean the
	// agents that were there stopped answering.
	if len(hives) > 0 && !slices.ContainsFunc(hives, func(h client.HiveInfo) bool { return !h.Stale }) {
		o.errorf("no agent answers now; %d hive(s) seen within %s are stale", len(hives), h.Stale)
		code = exitNoAgent
	}
	for _, hi := range hives {
		if hi.Error != "" {
			o.errorf("hive %s (%s): %s", hi.HiveID, hi.Instance, hi.Error)
			code = exitNoAgent
		}
	}
	if code != exitOK {
		return exitError{code}
	}
	return nil
}

// emptyFleet reports whether err says that no agent at all answered
// discovery; it then says so on stderr, and the fleet view is an empty
// table with exit 0 (a named hive nobody serves stays exit 3).
func emptyFleet(o *output, err error) bool {
	if !errors.Is(err, client.ErrNoAgent) {
		return false
	}
	fmt.Fprintln(o.stderr, "no hive-agent answered on this NATS system (start one: hive-agent --nats-url <this server>)")
	return true
}
