// Package gpu reads what the NVIDIA driver says about this machine's GPUs:
// each GPU's memory and the compute processes on it. The source is
// nvidia-smi in query mode, run with a bound on its time and cached
// briefly (Source); the parsing here is pure and tested on recorded output.
//
// nvidia-smi rather than NVML: NVML (github.com/NVIDIA/go-nvml) needs cgo,
// which the agent's static builds do without, and a test can put a fake
// nvidia-smi first on PATH, which it cannot do with a library.
package gpu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// GPU is one NVIDIA GPU as nvidia-smi reports it. Index is the host index
// (nvidia-smi ignores CUDA_VISIBLE_DEVICES). Memory figures are MiB; they
// are -1 when unknown (the GPU was found by `nvidia-smi -L` or the driver's
// /proc entries, which carry no memory).
type GPU struct {
	Index          int    `json:"index"`
	UUID           string `json:"uuid"`
	Name           string `json:"name"`
	MemoryTotalMiB int64  `json:"memory_total_mib"`
	MemoryUsedMiB  int64  `json:"memory_used_mib"`
	MemoryFreeMiB  int64  `json:"memory_free_mib"`
}

// HasMemory reports whether the memory figures are known.
func (g GPU) HasMemory() bool { return g.MemoryTotalMiB >= 0 }

// App is one compute process on a GPU, as --query-compute-apps lists it.
// PID is a host pid, also when the agent runs in a container.
type App struct {
	PID     int    `json:"pid"`
	GPUUUID string `json:"gpu_uuid"`
	UsedMiB int64  `json:"used_memory_mib"`
}

// The nvidia-smi arguments the agent runs.
var (
	QueryGPUArgs  = []string{"--query-gpu=index,uuid,name,memory.total,memory.used,memory.free", "--format=csv,noheader,nounits"}
	QueryAppsArgs = []string{"--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"}
	ListArgs      = []string{"-L"}
)

var listRe = regexp.MustCompile(`^GPU ([0-9]+): (.*) \(UUID: (GPU-[0-9a-fA-F-]+)\)$`)

// ParseList reads `nvidia-smi -L`: one "GPU N: name (UUID: GPU-...)" line
// per GPU; MIG lines under a GPU and anything else are skipped. Memory is
// unknown (-1).
func ParseList(out string) []GPU {
	var gs []GPU
	for _, line := range strings.Split(out, "\n") {
		m := listRe.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		gs = append(gs, GPU{Index: i, Name: m[2], UUID: m[3], MemoryTotalMiB: -1, MemoryUsedMiB: -1, MemoryFreeMiB: -1})
	}
	return gs
}

// ParseGPUs reads the output of nvidia-smi with QueryGPUArgs: one line per
// GPU, "index, uuid, name, total, used, free" in MiB. A name may contain
// commas; the fields around it are fixed, so it is whatever lies between.
func ParseGPUs(out string) ([]GPU, error) {
	var gs []GPU
	for n, line := range lines(out) {
		f := splitCSV(line)
		if len(f) < 6 {
			return nil, fmt.Errorf("query-gpu line %d %q: want 6 fields, got %d", n+1, line, len(f))
		}
		name := strings.Join(f[2:len(f)-3], ", ")
		g := GPU{UUID: f[1], Name: name}
		var err error
		if g.Index, err = strconv.Atoi(f[0]); err != nil {
			return nil, fmt.Errorf("query-gpu line %d: index %q: %w", n+1, f[0], err)
		}
		mem := f[len(f)-3:]
		for i, p := range []*int64{&g.MemoryTotalMiB, &g.MemoryUsedMiB, &g.MemoryFreeMiB} {
			if *p, err = mib(mem[i]); err != nil {
				return nil, fmt.Errorf("query-gpu line %d: %w", n+1, err)
			}
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// ParseApps reads the output of nvidia-smi with QueryAppsArgs: one line per
// compute process, "pid, gpu_uuid, used_memory" in MiB. Where the driver
// cannot tell a process's memory (Windows under WDDM) it prints
// "[N/A]"; that reads as 0.
func ParseApps(out string) ([]App, error) {
	var as []App
	for n, line := range lines(out) {
		// "No running processes found" is what some drivers print
		// instead of nothing.
		if strings.HasPrefix(line, "No running") {
			continue
		}
		f := splitCSV(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("query-compute-apps line %d %q: want 3 fields, got %d", n+1, line, len(f))
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("query-compute-apps line %d: pid %q: %w", n+1, f[0], err)
		}
		used, err := mib(f[2])
		if err != nil {
			used = 0
		}
		as = append(as, App{PID: pid, GPUUUID: f[1], UsedMiB: used})
	}
	return as, nil
}

func lines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

func splitCSV(line string) []string {
	f := strings.Split(line, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

// mib reads a memory figure; a trailing " MiB" (output without nounits)
// is accepted.
func mib(s string) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(s, "MiB")), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory %q: %w", s, err)
	}
	return v, nil
}
