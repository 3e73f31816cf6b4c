package consumer

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// DefaultHeartbeatInterval is how often an agent publishes its heartbeat.
const DefaultHeartbeatInterval = 10 * time.Second

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
	ev := wire.HeartbeatEvent{HiveID: c.cfg.HiveID, Instance: *instance, Workers: -1, InFlight: c.InFlight(), Draining: c.drain.active()}
	if res, err := (&commands.List{}).Execute(c.runCtx, commands.Deps{Spawner: c.cfg.Spawner}); err == nil {
		ev.Workers = len(res.(wire.ListResult).Workers)
	}
	body, err := json.Marshal(ev)
	if err == nil {
		err = c.nc.Publish(subj, body)
	}
	if err != nil {
		c.log.Debug("publish heartbeat", "subject", subj, "err", err)
	}
}
