package commands

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/rbee/hive-agent/gpu"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// Defaults of a GPUPolicy.
const (
	DefaultVRAMSettle         = 60 * time.Second
	DefaultVRAMReleaseTimeout = 15 * time.Second
)

// GPUConfig configures a GPUPolicy.
type GPUConfig struct {
	// Source is the agent's nvidia-smi source (bounded, cached).
	Source *gpu.Source
	// Resolve maps a CUDA device to its GPU, honouring the agent's
	// CUDA_VISIBLE_DEVICES (spawner.DeviceProbe.GPU); Visible lists the
	// GPUs spawns may name, in cuda:N order.
	Resolve func(spawner.Device) (gpu.GPU, error)
	Visible func() ([]gpu.GPU, error)
	// PIDs lists a running worker's processes (its group or cgroup).
	PIDs func(spawner.Worker) []int
	// Settle is how long what a spawn asked for counts against the GPU's
	// free memory while its worker does not use it yet (--vram-settle).
	Settle time.Duration
	// ReleaseTimeout bounds the check, after a GPU worker ends, that its
	// processes left the GPU (--vram-release-timeout).
	ReleaseTimeout time.Duration
	// Poll is how often the release check and the taint re-check ask
	// nvidia-smi; default 250ms and 2s.
	Poll, Recheck time.Duration
	// TaintFile keeps the tainted GPUs across agent restarts (see
	// spawn_gputaintfile.go); empty: in memory only.
	TaintFile string
	// OnReleased and OnTainted publish the events; they may be nil.
	OnReleased func(wire.GPUReleased)
	OnTainted  func(wire.GPUTainted)
	Logger     *slog.Logger
}

// GPUPolicy is the agent's GPU memory policy: admission of spawns by free
// memory, the release check after a GPU worker ends, and taint. Safe for
// concurrent use; a nil *GPUPolicy admits everything and checks nothing.
type GPUPolicy struct {
	cfg    GPUConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	reserved map[string]reservation // by worker id
	tainted  map[string]*taint      // by GPU uuid
	checks   map[string]*check      // release checks in progress or just finished, by worker id and pid
	pidsSeen map[string][]int       // the last pids of each worker seen on a GPU
	usedSeen map[string]int64       // and the memory they held then
	loaded   []string               // taints of an earlier run, not re-checked yet (ResumeTaints)
}

// reservation is what an admitted spawn asked of a GPU, counted until its
// worker uses it or Settle passes.
type reservation struct {
	uuid   string
	askMiB int64
	at     time.Time
	w      *spawner.Worker // once started
}

// NewGPUPolicy returns a policy; Close stops its re-checks.
func NewGPUPolicy(cfg GPUConfig) *GPUPolicy {
	if cfg.Settle == 0 {
		cfg.Settle = DefaultVRAMSettle
	}
	if cfg.ReleaseTimeout <= 0 {
		cfg.ReleaseTimeout = DefaultVRAMReleaseTimeout
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &GPUPolicy{cfg: cfg, ctx: ctx, cancel: cancel, reserved: map[string]reservation{},
		tainted: map[string]*taint{}, checks: map[string]*check{}, pidsSeen: map[string][]int{}, usedSeen: map[string]int64{}}
	p.loadTaints()
	return p
}

// Close stops the taint re-checks and waits for them.
func (p *GPUPolicy) Close() {
	if p == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
}

// admit checks a spawn on device d that asks for askMiB of free memory (0:
// no ask) and reserves it. A tainted GPU refuses every spawn.
func (p *GPUPolicy) admit(ctx context.Context, workerID string, d spawner.Device, askMiB int64) error {
	if p == nil || d.Kind != spawner.CUDA {
		return nil
	}
	g, err := p.cfg.Resolve(d)
	if err != nil {
		return err
	}
	var snap gpu.Snapshot
	if askMiB > 0 {
		// Outside the lock: a wedged nvidia-smi costs its bound, once.
		snap, err = p.cfg.Source.Snapshot(ctx)
		if err != nil {
			return &wire.Error{Code: wire.CodeInsufficientVRAM, Message: fmt.Sprintf(
				"%s (%s): the spawn asks for %d MiB free, and the GPU's free memory cannot be read: %v", d.Raw, g.UUID, askMiB, err)}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.tainted[g.UUID]; t != nil {
		return &wire.Error{Code: wire.CodeDeviceUnavailable, Message: fmt.Sprintf(
			"%s (%s) is tainted: pid(s) %v of worker %s, which ended, still hold %d MiB on it; spawns are refused until they are gone",
			d.Raw, g.UUID, t.pids, t.workerID, t.usedMiB)}
	}
	if askMiB <= 0 {
		return nil
	}
	i := slices.IndexFunc(snap.GPUs, func(x gpu.GPU) bool { return x.UUID == g.UUID })
	if i < 0 || !snap.GPUs[i].HasMemory() {
		return &wire.Error{Code: wire.CodeInsufficientVRAM, Message: fmt.Sprintf(
			"%s (%s): the spawn asks for %d MiB free, and nvidia-smi reports no memory for this GPU", d.Raw, g.UUID, askMiB)}
	}
	free := snap.GPUs[i].MemoryFreeMiB
	pending := p.pendingLocked(g.UUID, snap)
	if free-pending < askMiB {
		msg := fmt.Sprintf("%s (%s, %s) has %d MiB free", d.Raw, g.UUID, g.Name, free)
		if pending > 0 {
			msg += fmt.Sprintf(", of which %d MiB are promised to workers started in the last %s that do not use it yet", pending, p.cfg.Settle)
		}
		return &wire.Error{Code: wire.CodeInsufficientVRAM, Message: msg + fmt.Sprintf("; the spawn asks for %d MiB", askMiB)}
	}
	p.reserved[workerID] = reservation{uuid: g.UUID, askMiB: askMiB, at: time.Now()}
	return nil
}

// pendingLocked is what admitted spawns on the GPU asked for in the last
// Settle and their workers do not use yet.
func (p *GPUPolicy) pendingLocked(uuid string, snap gpu.Snapshot) int64 {
	var sum int64
	for id, r := range p.reserved {
		if time.Since(r.at) > p.cfg.Settle {
			delete(p.reserved, id)
			continue
		}
		if r.uuid != uuid {
			continue
		}
		used := int64(0)
		if r.w != nil {
			used = usedBy(snap.AppsOn(uuid), p.cfg.PIDs(*r.w))
		}
		sum += max(0, r.askMiB-used)
	}
	return sum
}

// started ties a reservation to the worker that was started for it.
func (p *GPUPolicy) started(w spawner.Worker) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.reserved[w.WorkerID]; ok {
		r.w = &w
		p.reserved[w.WorkerID] = r
	}
}

// abandon drops the reservation of a spawn that started nothing.
func (p *GPUPolicy) abandon(workerID string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.reserved[workerID]; ok && r.w == nil {
		delete(p.reserved, workerID)
	}
}

func usedBy(apps []gpu.App, pids []int) int64 {
	var sum int64
	for _, a := range apps {
		if slices.Contains(pids, a.PID) {
			sum += a.UsedMiB
		}
	}
	return sum
}
