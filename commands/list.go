package commands

import (
	"cmp"
	"context"
	"slices"

	"github.com/rbee/hive-agent/wire"
)

// List reports every worker of this hive.
type List struct {
	wire.ListRequest
}

// Kind is worker.list.
func (c *List) Kind() string             { return wire.KindList }
func (c *List) envelope() *wire.Envelope { return &c.Envelope }
func (c *List) validate() *wire.Error    { return nil }

// Execute reads the process table, then adds the workers waiting for a
// restart (always) and those that exited (with all), sorted by id. An id
// that runs again is listed once, running.
func (c *List) Execute(ctx context.Context, d Deps) (any, error) {
	ws, err := d.Spawner.List(ctx)
	if err != nil {
		return nil, err
	}
	now := d.now()
	vram := d.GPU.usage(ctx, ws)
	res := wire.ListResult{Workers: make([]wire.WorkerInfo, 0, len(ws))}
	running := map[string]bool{}
	for _, w := range ws {
		res.Workers = append(res.Workers, withVRAM(runningInfo(d.Spawner, w, now), vram))
		running[w.WorkerID] = true
	}
	for _, dep := range d.Spawner.Departed() {
		if running[dep.WorkerID] || (!c.All && dep.State != "backoff") {
			continue
		}
		res.Workers = append(res.Workers, departedInfo(dep))
	}
	// Sorted by id, as the process table's workers are: departed ones
	// come in exit order.
	slices.SortStableFunc(res.Workers, func(a, b wire.WorkerInfo) int { return cmp.Compare(a.WorkerID, b.WorkerID) })
	return res, nil
}

// withVRAM adds the worker's GPU memory, when it is known.
func withVRAM(info wire.WorkerInfo, vram map[string]int64) wire.WorkerInfo {
	if v, ok := vram[info.WorkerID]; ok {
		info.GPUMemoryMiB = &v
	}
	return info
}
