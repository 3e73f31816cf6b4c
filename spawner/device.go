package spawner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/rbee/hive-agent/gpu"
)

// WorkerType is the kind of worker a device needs: it names the binary
// <type>-worker-rbee.
type WorkerType string

// The worker types.
const (
	CPU   WorkerType = "cpu-llm"
	CUDA  WorkerType = "cuda-llm"
	Metal WorkerType = "metal-llm"
)

// Binary is the file name of the worker binary for t.
func (t WorkerType) Binary() string { return string(t) + "-worker-rbee" }

// Device is a parsed device string: cpu, CPU-N, cuda:N, GPU-N, GPU-<uuid>
// or metal.
type Device struct {
	Raw   string
	Type  WorkerType
	Index int // -1 when the device names no index (cpu, metal, GPU-<uuid>)
	// UUID is the GPU's UUID for a GPU-<uuid> device, as `nvidia-smi -L`
	// prints it (GPU-f6a4b594-...); empty otherwise.
	UUID string
}

var (
	deviceRe  = regexp.MustCompile(`^(?:(cpu)|CPU-([0-9]{1,4})|cuda:([0-9]{1,4})|GPU-([0-9]{1,4})|(metal))$`)
	gpuUUIDRe = regexp.MustCompile(`^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// DeviceSyntax is what a device string may be, for messages.
const DeviceSyntax = "cpu, CPU-N, cuda:N, GPU-N, GPU-<uuid> (as nvidia-smi -L prints it) or metal"

// ParseDevice checks the syntax of a device string and picks its worker type.
func ParseDevice(s string) (Device, error) {
	if gpuUUIDRe.MatchString(s) {
		return Device{Raw: s, Type: CUDA, Index: -1, UUID: s}, nil
	}
	m := deviceRe.FindStringSubmatch(s)
	if m == nil {
		return Device{}, fmt.Errorf("device %q: want %s", s, DeviceSyntax)
	}
	d := Device{Raw: s, Index: -1}
	switch {
	case m[1] != "":
		d.Type = CPU
	case m[2] != "":
		d.Type = CPU
		d.Index, _ = strconv.Atoi(m[2])
	case m[3] != "":
		d.Type = CUDA
		d.Index, _ = strconv.Atoi(m[3])
	case m[4] != "":
		d.Type = CUDA
		d.Index, _ = strconv.Atoi(m[4])
	case m[5] != "":
		d.Type = Metal
	}
	return d, nil
}

// SMITimeout bounds a run of nvidia-smi.
const SMITimeout = gpu.DefaultTimeout

// DeviceProbe answers whether a device exists on this machine. The zero
// value probes the real machine; tests point the paths at fixtures.
type DeviceProbe struct {
	// GOOS overrides runtime.GOOS.
	GOOS string
	// NvidiaProcDir is the driver's GPU directory, /proc/driver/nvidia/gpus,
	// read when nvidia-smi does not answer.
	NvidiaProcDir string
	// NvidiaSMI is the nvidia-smi command (default: nvidia-smi on the
	// PATH), asked first; GPUs, when set, is the source to ask instead.
	NvidiaSMI string
	GPUs      *gpu.Source
	// NumCPU overrides runtime.NumCPU.
	NumCPU int
	// LookupEnv overrides os.LookupEnv (for CUDA_VISIBLE_DEVICES).
	LookupEnv func(string) (string, bool)
	// SystemProfiler is the command that describes macOS's GPUs (see
	// metal.go); empty: system_profiler, asked only on macOS itself.
	SystemProfiler string
}

func (p DeviceProbe) goos() string {
	if p.GOOS != "" {
		return p.GOOS
	}
	return runtime.GOOS
}

// Check returns nil when d can be used here, or an error wrapping
// ErrDeviceUnavailable that says why not.
func (p DeviceProbe) Check(d Device) error {
	goos := p.goos()
	switch d.Type {
	case Metal:
		if goos != "darwin" {
			return fmt.Errorf("%w: metal needs macOS, this host runs %s", ErrDeviceUnavailable, goos)
		}
		return p.checkMetal()
	case CPU:
		n := p.NumCPU
		if n == 0 {
			n = runtime.NumCPU()
		}
		if d.Index >= n {
			return fmt.Errorf("%w: %s: this host has %d CPUs (CPU-0 to CPU-%d)", ErrDeviceUnavailable, d.Raw, n, n-1)
		}
		return nil
	case CUDA:
		_, err := p.GPU(d)
		return err
	}
	return fmt.Errorf("%w: unknown device type %q", ErrDeviceUnavailable, d.Type)
}

// GPU is the one place a CUDA device is resolved: cuda:N and GPU-N are the
// Nth GPU the agent's CUDA_VISIBLE_DEVICES shows (every GPU when it is
// unset), GPU-<uuid> must be one of those same GPUs. Anything else is
// ErrDeviceUnavailable saying what is visible.
func (p DeviceProbe) GPU(d Device) (gpu.GPU, error) {
	if d.Type != CUDA {
		return gpu.GPU{}, fmt.Errorf("%w: %s is not a GPU", ErrDeviceUnavailable, d.Raw)
	}
	if p.goos() == "darwin" {
		return gpu.GPU{}, fmt.Errorf("%w: %s: CUDA is not available on macOS", ErrDeviceUnavailable, d.Raw)
	}
	visible, where, err := p.VisibleGPUs()
	if err != nil {
		return gpu.GPU{}, fmt.Errorf("%w: %s: %v", ErrDeviceUnavailable, d.Raw, err)
	}
	if d.UUID != "" {
		for _, g := range visible {
			if g.UUID == d.UUID {
				return g, nil
			}
		}
		uuids := make([]string, 0, len(visible))
		for _, g := range visible {
			uuids = append(uuids, g.UUID)
		}
		return gpu.GPU{}, fmt.Errorf("%w: %s: no such GPU among the %d visible (%s: %s)",
			ErrDeviceUnavailable, d.Raw, len(visible), where, strings.Join(uuids, ", "))
	}
	if d.Index < 0 || d.Index >= len(visible) {
		return gpu.GPU{}, fmt.Errorf("%w: %s: %d NVIDIA GPU(s) visible (%s)", ErrDeviceUnavailable, d.Raw, len(visible), where)
	}
	return visible[d.Index], nil
}

// VisibleGPUs lists the NVIDIA GPUs a worker started by this agent can
// see, in CUDA's order: the host's GPUs (from nvidia-smi, or without it
// from the driver's entries under /proc/driver/nvidia/gpus), narrowed by
// CUDA_VISIBLE_DEVICES when the agent's environment sets it, whose entries
// may be indexes or UUIDs. where says what was read.
func (p DeviceProbe) VisibleGPUs() (visible []gpu.GPU, where string, err error) {
	host, where, err := p.hostGPUs()
	if err != nil {
		return nil, "", err
	}
	lookupEnv := p.LookupEnv
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	v, set := lookupEnv("CUDA_VISIBLE_DEVICES")
	if set {
		where += ", CUDA_VISIBLE_DEVICES=" + v
	}
	return gpu.Visible(host, v, set), where, nil
}

// CountGPUs counts the GPUs VisibleGPUs lists.
func (p DeviceProbe) CountGPUs() (n int, where string, err error) {
	visible, where, err := p.VisibleGPUs()
	return len(visible), where, err
}

// sources are the shared nvidia-smi sources of probes without their own,
// one per command, so that every check shares one bounded, cached run.
var sources sync.Map

// Source is the nvidia-smi source the probe asks.
func (p DeviceProbe) Source() *gpu.Source {
	if p.GPUs != nil {
		return p.GPUs
	}
	smi := p.NvidiaSMI
	if smi == "" {
		smi = "nvidia-smi"
	}
	src, _ := sources.LoadOrStore(smi, gpu.NewSource(gpu.SourceConfig{Command: smi}))
	return src.(*gpu.Source)
}

// hostGPUs lists the host's GPUs by host index.
func (p DeviceProbe) hostGPUs() ([]gpu.GPU, string, error) {
	src := p.Source()
	snap, smiErr := src.Snapshot(context.Background())
	if smiErr == nil {
		return snap.GPUs, snap.From, nil
	}
	dir := p.NvidiaProcDir
	if dir == "" {
		dir = "/proc/driver/nvidia/gpus"
	}
	entries, dirErr := os.ReadDir(dir)
	if dirErr != nil {
		what := "no NVIDIA driver found"
		if !errors.Is(smiErr, gpu.ErrNoNvidiaSMI) {
			what = "cannot list the NVIDIA GPUs"
		}
		return nil, "", fmt.Errorf("%s (nvidia-smi: %v; %s: %v)", what, smiErr, dir, dirErr)
	}
	var gs []gpu.GPU
	for i, e := range entries {
		g := gpu.GPU{Index: i, MemoryTotalMiB: -1, MemoryUsedMiB: -1, MemoryFreeMiB: -1}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name(), "information"))
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "GPU UUID":
				g.UUID = strings.TrimSpace(v)
			case "Model":
				g.Name = strings.TrimSpace(v)
			}
		}
		gs = append(gs, g)
	}
	return gs, dir, nil
}

// CountNvidiaSMIList counts the "GPU N: ..." lines of `nvidia-smi -L` output.
func CountNvidiaSMIList(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "GPU ") {
			n++
		}
	}
	return n
}

// VisibleDevices counts the devices CUDA_VISIBLE_DEVICES exposes: CUDA stops
// at the first invalid entry, and -1 (or an empty value) hides every GPU.
func VisibleDevices(v string) int {
	n := 0
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" || strings.HasPrefix(e, "-") {
			break
		}
		n++
	}
	return n
}

// Resolve finds the binary for t: the first executable <type>-worker-rbee
// in dirs, then in PATH. The error says every place it looked.
func Resolve(t WorkerType, dirs []string) (string, error) { return ResolveBinary(t.Binary(), dirs) }

// ResolveBinary finds the worker binary name: an absolute path is used as
// is when it is executable; a file name is looked up in dirs, then in PATH.
// The error says every place it looked.
func ResolveBinary(name string, dirs []string) (string, error) {
	if filepath.IsAbs(name) {
		if isExecutable(name) {
			return filepath.Clean(name), nil
		}
		return "", fmt.Errorf("%w: %s is not an executable file", ErrBinaryNotFound, name)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if isExecutable(p) {
			abs, err := filepath.Abs(p)
			if err != nil {
				return "", fmt.Errorf("resolve %s: %w", p, err)
			}
			return abs, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
	}
	where := "PATH (" + os.Getenv("PATH") + ")"
	if len(dirs) > 0 {
		where = strings.Join(dirs, ", ") + " and " + where
	}
	return "", fmt.Errorf("%w: no executable %s in %s", ErrBinaryNotFound, name, where)
}
