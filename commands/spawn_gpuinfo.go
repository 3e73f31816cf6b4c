package commands

import (
	"context"
	"slices"
	"strconv"

	"github.com/rbee/hive-agent/spawner"
)

// GPUInfo is one GPU as the metadata, the stats and `hive-agent hives`
// show it. Index is the N of cuda:N, which a spawn names (the host index
// unless the agent's CUDA_VISIBLE_DEVICES reorders or hides GPUs).
type GPUInfo struct {
	Device         string `json:"device"`
	Index          int    `json:"index"`
	UUID           string `json:"uuid"`
	Name           string `json:"name"`
	MemoryTotalMiB int64  `json:"memory_total_mib"`
	MemoryUsedMiB  int64  `json:"memory_used_mib"`
	MemoryFreeMiB  int64  `json:"memory_free_mib"`
	Tainted        bool   `json:"tainted"`
	TaintedPIDs    []int  `json:"tainted_pids,omitempty"`
}

// GPUs lists the GPUs spawns may name, with their memory and taint.
func (p *GPUPolicy) GPUs() ([]GPUInfo, error) {
	if p == nil {
		return nil, nil
	}
	vis, err := p.cfg.Visible()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]GPUInfo, 0, len(vis))
	for i, g := range vis {
		info := GPUInfo{Device: "cuda:" + strconv.Itoa(i), Index: i, UUID: g.UUID, Name: g.Name,
			MemoryTotalMiB: g.MemoryTotalMiB, MemoryUsedMiB: g.MemoryUsedMiB, MemoryFreeMiB: g.MemoryFreeMiB}
		if t := p.tainted[g.UUID]; t != nil {
			info.Tainted, info.TaintedPIDs = true, slices.Clone(t.pids)
		}
		out = append(out, info)
	}
	return out, nil
}

// Tainted counts the tainted GPUs.
func (p *GPUPolicy) Tainted() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tainted)
}

// usage is the GPU memory of each worker on a GPU, by worker id: the sum
// over its processes listed by --query-compute-apps. One cached
// nvidia-smi answer serves the whole list; nil when it cannot be read.
func (p *GPUPolicy) usage(ctx context.Context, ws []spawner.Worker) map[string]int64 {
	if p == nil {
		return nil
	}
	var gws []spawner.Worker
	for _, w := range ws {
		if d, err := spawner.ParseDevice(w.Device); err == nil && d.Type == spawner.CUDA {
			gws = append(gws, w)
		}
	}
	if len(gws) == 0 {
		return nil
	}
	snap, err := p.cfg.Source.Snapshot(ctx)
	if err != nil || snap.AppsErr != nil {
		return nil
	}
	// The process table is read before the lock: admission waits on it.
	pidsOf := make([][]int, len(gws))
	for i, w := range gws {
		pidsOf[i] = p.cfg.PIDs(w)
	}
	out := map[string]int64{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, w := range gws {
		pids := pidsOf[i]
		var used int64
		var on []int
		for _, a := range snap.Apps {
			if slices.Contains(pids, a.PID) {
				used += a.UsedMiB
				on = append(on, a.PID)
			}
		}
		out[w.WorkerID] = used
		p.seenLocked(w.WorkerID, on, used)
	}
	return out
}

// seenLocked records a worker's processes seen on a GPU and what they
// held, for the release check after it ends.
func (p *GPUPolicy) seenLocked(workerID string, pids []int, used int64) {
	if len(pids) > 0 {
		p.pidsSeen[workerID] = union(p.pidsSeen[workerID], pids)
		p.usedSeen[workerID] = used
	}
}
