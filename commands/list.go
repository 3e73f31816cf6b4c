package commands

import "context"

// List reports every worker of this hive.
type List struct {
	Envelope
}

// Kind is worker.list.
func (c *List) Kind() string        { return KindList }
func (c *List) envelope() *Envelope { return &c.Envelope }
func (c *List) validate() *Error    { return nil }

// ListResult is the result of a list.
type ListResult struct {
	Workers []WorkerInfo `json:"workers"`
}

// Execute reads the process table.
func (c *List) Execute(ctx context.Context, d Deps) (any, error) {
	ws, err := d.Spawner.List(ctx)
	if err != nil {
		return nil, err
	}
	now := d.now()
	vram := d.GPU.usage(ctx, ws)
	res := ListResult{Workers: make([]WorkerInfo, 0, len(ws))}
	for _, w := range ws {
		res.Workers = append(res.Workers, withVRAM(infoOf(w, now), vram))
	}
	return res, nil
}

// withVRAM adds the worker's GPU memory, when it is known.
func withVRAM(info WorkerInfo, vram map[string]int64) WorkerInfo {
	if v, ok := vram[info.WorkerID]; ok {
		info.GPUMemoryMiB = &v
	}
	return info
}
