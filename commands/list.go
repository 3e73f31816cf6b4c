package commands

import (
	"context"

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

// Execute reads the process table.
func (c *List) Execute(ctx context.Context, d Deps) (any, error) {
	ws, err := d.Spawner.List(ctx)
	if err != nil {
		return nil, err
	}
	now := d.now()
	res := wire.ListResult{Workers: make([]wire.WorkerInfo, 0, len(ws))}
	for _, w := range ws {
		res.Workers = append(res.Workers, infoOf(w, now))
	}
	return res, nil
}
