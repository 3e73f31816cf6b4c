package consumer

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
)

// DefaultHeartbeatInterval is how often an agent publishes its heartbeat.
const DefaultHeartbeatInterval = 10 * time.Second

// HeartbeatEvent is published on hive.<hive_id>.events.agent.heartbeat
// every Config.HeartbeatInterval while the agent serves. Stored in
// HIVE_EVENTS, the last one of each hive says when it was last seen, so
// that `hive-agent hives` shows a hive that stopped answering as stale.
type HeartbeatEvent struct {
	HiveID string `json:"hive_id"`
	// Instance is the agent's micro service id.
	Instance string `json:"instance"`
	// Workers is how many workers the hive lists (-1 when the process
	// table could not be read).
	Workers  int  `json:"workers"`
	InFlight int  `json:"in_flight"`
	Draining bool `json:"draining"`
}

// heartbeat publishes HeartbeatEvents until stopped.
type heartbeat struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// startHeartbeat publishes one heartbeat now and then one every interval.
func (c *Consumer) startHeartbeat() {
	h := &heartbeat{stop: make(chan struct{})}
	c.beat = h
	h.wg.Go(func() {
		t := time.NewTicker(c.cfg.HeartbeatInterval)
		defer t.Stop()
		for {
			c.publishHeartbeat()
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	})
}

// stopHeartbeat stops the heartbeats (a stopped agent publishes none).
func (c *Consumer) stopHeartbeat() {
	if c.beat != nil {
		close(c.beat.stop)
		c.beat.wg.Wait()
		c.beat = nil
	}
}

func (c *Consumer) publishHeartbeat() {
	instance := c.instance.Load()
	if instance == nil {
		return
	}
	subj, err := subjects.Heartbeat(c.cfg.HiveID)
	if err != nil {
		c.log.Error("heartbeat subject", "err", err)
		return
	}
	ev := HeartbeatEvent{HiveID: c.cfg.HiveID, Instance: *instance, Workers: -1, InFlight: c.InFlight(), Draining: c.drain.active()}
	if res, err := (&commands.List{}).Execute(c.runCtx, commands.Deps{Spawner: c.cfg.Spawner}); err == nil {
		ev.Workers = len(res.(commands.ListResult).Workers)
	}
	body, err := json.Marshal(ev)
	if err == nil {
		err = c.nc.Publish(subj, body)
	}
	if err != nil {
		c.log.Debug("publish heartbeat", "subject", subj, "err", err)
	}
}
