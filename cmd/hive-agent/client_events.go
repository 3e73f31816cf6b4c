package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rbee/hive-agent/client"
)

// eventsCmd is `hive-agent events`: every hive's events, live or replayed.
type eventsCmd struct {
	Hive        string        `name:"hive" short:"H" env:"HIVE_ID" help:"Only this hive's events. Without it (and without HIVE_ID): every hive."`
	All         bool          `name:"all" help:"Every hive's events; it wins over --hive and HIVE_ID."`
	Since       time.Duration `name:"since" help:"Replay the events of this last while from stream HIVE_EVENTS first (e.g. 1h)."`
	Follow      bool          `name:"follow" short:"f" help:"Keep printing new events until Ctrl-C (always so without --since)."`
	Heartbeats  bool          `name:"heartbeats" help:"Also print the agents' heartbeats (agent.heartbeat, every 10 s per agent)."`
	domainFlag  `embed:""`
	clientFlags `embed:""`
}

func (e *eventsCmd) check() error {
	if e.Since < 0 {
		return usagef("--since %v: want a positive duration such as 30m", e.Since)
	}
	if err := checkDomain(e.JetStreamDomain); err != nil {
		return usagef("%v", err)
	}
	if e.Hive != "" && !e.All {
		return checkToken("--hive", e.Hive)
	}
	return nil
}

func (e *eventsCmd) run(ctx context.Context, o *output, c *client.Client) error {
	opts := client.EventsOptions{Hive: e.Hive, Since: e.Since, Follow: e.Follow}
	if e.All {
		opts.Hive = ""
	}
	enc := json.NewEncoder(o.stdout)
	return c.Events(ctx, opts, func(ev client.HiveEvent) {
		if ev.Kind == "agent.heartbeat" && !e.Heartbeats {
			return
		}
		if e.JSON {
			enc.Encode(ev)
			return
		}
		fmt.Fprintln(o.stdout, client.EventText(ev))
	})
}
