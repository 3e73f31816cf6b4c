package commands

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/rbee/hive-agent/gpu"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// GPURelease is what a release check found: Checked is false for a
// worker on no GPU (or when the GPU cannot be resolved any more).
type GPURelease struct {
	Checked  bool
	Released bool
	MS       int64
}

type taint struct {
	device, workerID string
	pids             []int
	usedMiB          int64
	since            time.Time
}

type check struct {
	done    chan struct{}
	pids    []int
	seenMiB int64 // what the worker's processes held when last seen
	res     GPURelease
}

// ReleaseCheck waits, bounded by the release timeout, until none of the
// ended worker's processes (pids, its main pid, and those seen on a GPU
// earlier) is listed on its GPU, then publishes released, or else tainted
// (and the GPU refuses spawns until the agent sees them gone). Concurrent
// checks of one worker (a delete and the exit it causes) are one check.
func (p *GPUPolicy) ReleaseCheck(ctx context.Context, w spawner.Worker, pids []int) GPURelease {
	if p == nil {
		return GPURelease{}
	}
	d, err := spawner.ParseDevice(w.Device)
	if err != nil || d.Kind != spawner.CUDA {
		return GPURelease{}
	}
	key := w.WorkerID + "/" + strconv.Itoa(w.PID)
	p.mu.Lock()
	delete(p.reserved, w.WorkerID)
	if c := p.checks[key]; c != nil {
		c.pids = union(c.pids, pids)
		p.mu.Unlock()
		select {
		case <-c.done:
			return c.res
		case <-ctx.Done():
			return GPURelease{Checked: true}
		}
	}
	c := &check{done: make(chan struct{}), pids: union(union(pids, []int{w.PID}), p.pidsSeen[w.WorkerID]), seenMiB: p.usedSeen[w.WorkerID]}
	p.checks[key] = c
	p.mu.Unlock()
	c.res = p.release(ctx, w, d, c)
	p.mu.Lock()
	delete(p.pidsSeen, w.WorkerID)
	delete(p.usedSeen, w.WorkerID)
	p.mu.Unlock()
	close(c.done)
	// The check stays findable a while: the exit a delete caused may be
	// reported only after the delete's check ended, and must not publish
	// a second event for the same process.
	time.AfterFunc(finishedCheckKept, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.checks[key] == c {
			delete(p.checks, key)
		}
	})
	return c.res
}

// finishedCheckKept is how long a finished release check answers later
// checks of the same process instead of a new one.
const finishedCheckKept = time.Minute

func (p *GPUPolicy) release(ctx context.Context, w spawner.Worker, d spawner.Device, c *check) GPURelease {
	g, err := p.cfg.Resolve(d)
	if err != nil {
		p.cfg.Logger.Warn("GPU release check: cannot resolve the worker's GPU", "worker_id", w.WorkerID, "device", w.Device, "err", err)
		return GPURelease{}
	}
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ReleaseTimeout)
	defer cancel()
	held := c.seenMiB
	var left []int
	answered := false
	for {
		snap, err := p.cfg.Source.Fresh(ctx)
		if err == nil && snap.AppsErr == nil {
			answered = true
			p.mu.Lock()
			pids := slices.Clone(c.pids)
			p.mu.Unlock()
			left, held = holding(snap.AppsOn(g.UUID), pids, held)
			if len(left) == 0 {
				ms := time.Since(start).Milliseconds()
				p.emitReleased(wire.GPUReleased{Device: w.Device, UUID: g.UUID, WorkerID: w.WorkerID, FreedMiB: held, MS: ms})
				return GPURelease{Checked: true, Released: true, MS: ms}
			}
		}
		select {
		case <-ctx.Done():
			ms := time.Since(start).Milliseconds()
			if parent.Err() != nil {
				// The agent is stopping (or the delete's caller gave
				// up): nothing was decided.
				return GPURelease{Checked: true, MS: ms}
			}
			if !answered {
				// No process list at all (nvidia-smi broken or hung):
				// nothing to taint the GPU with.
				p.cfg.Logger.Warn("GPU release check: nvidia-smi never listed the compute processes", "worker_id", w.WorkerID, "device", w.Device, "ms", ms)
				return GPURelease{}
			}
			p.taint(g, w, left, held, start)
			return GPURelease{Checked: true, MS: ms}
		case <-time.After(p.cfg.Poll):
		}
	}
}

// holding returns the pids still listed and the most memory seen held.
func holding(apps []gpu.App, pids []int, held int64) ([]int, int64) {
	var left []int
	var used int64
	for _, a := range apps {
		if slices.Contains(pids, a.PID) {
			left = append(left, a.PID)
			used += a.UsedMiB
		}
	}
	return left, max(held, used)
}

// taint marks the GPU tainted by pids (unknown when nvidia-smi did not
// answer: then the worker's main pid) and re-checks it until they are gone.
func (p *GPUPolicy) taint(g gpu.GPU, w spawner.Worker, pids []int, used int64, since time.Time) {
	if len(pids) == 0 {
		pids = []int{w.PID}
	}
	p.mu.Lock()
	t, watching := p.tainted[g.UUID]
	if !watching {
		t = &taint{device: w.Device, since: since}
		p.tainted[g.UUID] = t
	}
	t.workerID, t.pids, t.usedMiB = w.WorkerID, union(t.pids, pids), t.usedMiB+used
	ev := wire.GPUTainted{Device: w.Device, UUID: g.UUID, WorkerID: w.WorkerID, PIDs: slices.Clone(pids), UsedMiB: used}
	p.saveTaintsLocked()
	p.mu.Unlock()
	p.cfg.Logger.Warn("GPU tainted: processes of an ended worker still hold memory; spawns on it are refused until they are gone",
		"device", w.Device, "uuid", g.UUID, "worker_id", w.WorkerID, "pids", pids, "used_mib", used)
	if p.cfg.OnTainted != nil {
		p.cfg.OnTainted(ev)
	}
	if !watching {
		p.wg.Go(func() { p.recheck(g.UUID) })
	}
}

// recheck asks nvidia-smi every Recheck until none of the taint's pids is
// listed on the GPU, then lifts the taint and publishes released.
func (p *GPUPolicy) recheck(uuid string) {
	tick := time.NewTicker(p.cfg.Recheck)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		snap, err := p.cfg.Source.Fresh(p.ctx)
		if err != nil || snap.AppsErr != nil {
			continue
		}
		p.mu.Lock()
		t := p.tainted[uuid]
		left, _ := holding(snap.AppsOn(uuid), t.pids, 0)
		if len(left) > 0 {
			if len(left) < len(t.pids) {
				t.pids = left
				p.saveTaintsLocked()
			}
			p.mu.Unlock()
			continue
		}
		delete(p.tainted, uuid)
		p.saveTaintsLocked()
		p.mu.Unlock()
		p.emitReleased(wire.GPUReleased{Device: t.device, UUID: uuid, WorkerID: t.workerID, FreedMiB: t.usedMiB, MS: time.Since(t.since).Milliseconds()})
		return
	}
}

func (p *GPUPolicy) emitReleased(ev wire.GPUReleased) {
	p.cfg.Logger.Info("GPU released", "device", ev.Device, "uuid", ev.UUID, "worker_id", ev.WorkerID, "freed_mib", ev.FreedMiB, "ms", ev.MS)
	if p.cfg.OnReleased != nil {
		p.cfg.OnReleased(ev)
	}
}

func union(a, b []int) []int {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// pidsOf lists a worker's processes while it still runs, for the release
// check that follows its stop; nil for a worker on no GPU.
func (p *GPUPolicy) pidsOf(w spawner.Worker) []int {
	if p == nil {
		return nil
	}
	if d, err := spawner.ParseDevice(w.Device); err != nil || d.Kind != spawner.CUDA {
		return nil
	}
	pids := p.cfg.PIDs(w)
	// What they hold, from the last answer nvidia-smi gave (no new run:
	// this is on the way to the first signal).
	var on []int
	var used int64
	for _, a := range p.cfg.Source.Last().Apps {
		if slices.Contains(pids, a.PID) {
			on, used = append(on, a.PID), used+a.UsedMiB
		}
	}
	p.mu.Lock()
	p.seenLocked(w.WorkerID, on, used)
	p.mu.Unlock()
	return pids
}

// ReleaseCheckAsync runs ReleaseCheck in the background (for exits that
// no delete waits on); Close cancels and waits for it.
func (p *GPUPolicy) ReleaseCheckAsync(w spawner.Worker) {
	if p == nil {
		return
	}
	p.wg.Go(func() { p.ReleaseCheck(p.ctx, w, nil) })
}
