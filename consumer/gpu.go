package consumer

import (
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// GPU event names: hive.<hive_id>.events.gpu.<name>.
const (
	EventGPUReleased = "released"
	EventGPUTainted  = "tainted"
)

// GPUReleased publishes hive.<hive_id>.events.gpu.released. Wire it to
// commands.GPUConfig.OnReleased.
func (c *Consumer) GPUReleased(ev wire.GPUReleased) {
	ev.HiveID = c.cfg.HiveID
	c.publishGPUEvent(EventGPUReleased, ev)
	c.cfg.Metrics.GPUReleased(ev.MS)
}

// GPUTainted publishes hive.<hive_id>.events.gpu.tainted. Wire it to
// commands.GPUConfig.OnTainted.
func (c *Consumer) GPUTainted(ev wire.GPUTainted) {
	ev.HiveID = c.cfg.HiveID
	c.publishGPUEvent(EventGPUTainted, ev)
}

func (c *Consumer) publishGPUEvent(name string, v any) {
	subj, err := subjects.GPUEvent(c.cfg.HiveID, name)
	c.publishTo(subj, err, v)
}

// checkGPURelease starts the release check of a worker that ended (a
// delete already runs it and this joins that one); it publishes its event
// itself. It is bounded by the policy's release timeout.
func (c *Consumer) checkGPURelease(w spawner.Worker) {
	if c.cfg.GPU == nil {
		return
	}
	c.cfg.GPU.ReleaseCheckAsync(w)
}

// gpuStats are the GPUs for the stats: the cached figures, never a wait
// on nvidia-smi longer than its bound.
func (c *Consumer) gpuStats() []wire.GPUInfo {
	gs, err := c.cfg.GPU.GPUs()
	if err != nil {
		return nil
	}
	return gs
}
