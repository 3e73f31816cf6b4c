package commands

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"time"

	"github.com/rbee/hive-agent/internal/statefile"
)

// A GPU's taint outlives the agent: processes of an ended worker that
// still hold memory on a GPU keep holding it while no agent runs, and the
// next agent must not hand the GPU to a new worker meanwhile. With
// GPUConfig.TaintFile set the taints are kept in that file (JSON, by GPU
// uuid), written when a GPU is tainted or released, and read by
// NewGPUPolicy, which re-checks each one as it would its own.

// taintRecord is one taint as the file keeps it.
type taintRecord struct {
	Device   string `json:"device"`
	WorkerID string `json:"worker_id"`
	PIDs     []int  `json:"pids"`
	UsedMiB  int64  `json:"used_mib"`
	SinceMS  int64  `json:"since_ms"`
}

// loadTaints takes on the taints an earlier run left: spawns on those
// GPUs are refused from now on; their re-checks start with ResumeTaints,
// once the events they publish have somewhere to go. A file that cannot be
// read is reported and set aside: the GPUs it named are then admitted by
// their free memory only.
func (p *GPUPolicy) loadTaints() {
	path := p.cfg.TaintFile
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var recs map[string]taintRecord
	if err == nil {
		err = json.Unmarshal(b, &recs)
	}
	if err != nil {
		p.cfg.Logger.Error("GPU taints of an earlier run cannot be read; those GPUs are admitted by free memory only", "file", path, "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for uuid, r := range recs {
		if len(r.PIDs) == 0 {
			continue
		}
		p.tainted[uuid] = &taint{device: r.Device, workerID: r.WorkerID, pids: slices.Clone(r.PIDs), usedMiB: r.UsedMiB, since: time.UnixMilli(r.SinceMS)}
		p.cfg.Logger.Warn("GPU tainted, as an earlier run found it: spawns on it are refused until these processes are gone",
			"device", r.Device, "uuid", uuid, "worker_id", r.WorkerID, "pids", r.PIDs, "used_mib", r.UsedMiB)
		p.loaded = append(p.loaded, uuid)
	}
}

// ResumeTaints starts the re-checks of the taints an earlier run left
// (loadTaints); the agent calls it once its consumer serves.
func (p *GPUPolicy) ResumeTaints() {
	if p == nil {
		return
	}
	p.mu.Lock()
	loaded := p.loaded
	p.loaded = nil
	p.mu.Unlock()
	for _, uuid := range loaded {
		p.wg.Go(func() { p.recheck(uuid) })
	}
}

// saveTaintsLocked writes the taints to the file (statefile.Write); none
// left removes it. p.mu held.
func (p *GPUPolicy) saveTaintsLocked() {
	path := p.cfg.TaintFile
	if path == "" {
		return
	}
	err := func() error {
		if len(p.tainted) == 0 {
			return statefile.Remove(path)
		}
		recs := make(map[string]taintRecord, len(p.tainted))
		for uuid, t := range p.tainted {
			recs[uuid] = taintRecord{Device: t.device, WorkerID: t.workerID, PIDs: t.pids, UsedMiB: t.usedMiB, SinceMS: t.since.UnixMilli()}
		}
		b, err := json.Marshal(recs)
		if err != nil {
			return err
		}
		return statefile.Write(path, b)
	}()
	if err != nil {
		p.cfg.Logger.Warn("GPU taints not saved; an agent started next admits those GPUs by free memory only", "file", path, "err", err)
	}
}
