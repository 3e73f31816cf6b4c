package commands

import "context"

// List reports every worker of this hive.
type List struct {
	Envelope
	// All adds the workers that exited within the agent's exited TTL.
	All bool `json:"all"`
}

// Kind is worker.list.
func (c *List) Kind() string        { return KindList }
func (c *List) envelope() *Envelope { return &c.Envelope }
func (c *List) validate() *Error    { return nil }

// ListResult is the result of a list.
type ListResult struct {
	Workers []WorkerInfo `json:"workers"`
}

// Execute reads the process table, then adds the workers waiting for a
// restart (always) and those that exited (with all). An id that runs
// again is listed once, running.
func (c *List) Execute(ctx context.Context, d Deps) (any, error) {
	ws, err := d.Spawner.List(ctx)
	if err != nil {
		return nil, err
	}
	now := d.now()
	res := ListResult{Workers: make([]WorkerInfo, 0, len(ws))}
	running := map[string]bool{}
	for _, w := range ws {
		res.Workers = append(res.Workers, runningInfo(d.Spawner, w, now))
		running[w.WorkerID] = true
	}
	for _, dep := range d.Spawner.Departed() {
		if running[dep.WorkerID] || (!c.All && dep.State != "backoff") {
			continue
		}
		res.Workers = append(res.Workers, departedInfo(dep))
	}
	return res, nil
}
