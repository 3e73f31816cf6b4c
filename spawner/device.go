package spawner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
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
	smiUUIDRe = regexp.MustCompile(`\(UUID: (GPU-[0-9a-f-]+)\)`)
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
const SMITimeout = 10 * time.Second

// DeviceProbe answers whether a device exists on this machine. The zero
// value probes the real machine; tests point the paths at fixtures.
type DeviceProbe struct {
	// GOOS overrides runtime.GOOS.
	GOOS string
	// NvidiaProcDir is the driver's GPU directory, /proc/driver/nvidia/gpus.
	NvidiaProcDir string
	// NvidiaSMI is the nvidia-smi command, used when NvidiaProcDir is absent.
	NvidiaSMI string
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
		if goos == "darwin" {
			return fmt.Errorf("%w: %s: CUDA is not available on macOS", ErrDeviceUnavailable, d.Raw)
		}
		if d.UUID != "" {
			return p.checkUUID(d)
		}
		n, where, err := p.CountGPUs()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrDeviceUnavailable, d.Raw, err)
		}
		if d.Index >= n {
			return fmt.Errorf("%w: %s: %d NVIDIA GPU(s) visible (%s)", ErrDeviceUnavailable, d.Raw, n, where)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown device type %q", ErrDeviceUnavailable, d.Type)
}

// CountGPUs counts the NVIDIA GPUs a worker started by this agent can see:
// the driver's entries under /proc/driver/nvidia/gpus (or, without that
// directory, the lines of `nvidia-smi -L`), narrowed by CUDA_VISIBLE_DEVICES
// when the agent's environment sets it. where says what was counted.
func (p DeviceProbe) CountGPUs() (n int, where string, err error) {
	dir := p.NvidiaProcDir
	if dir == "" {
		dir = "/proc/driver/nvidia/gpus"
	}
	entries, dirErr := os.ReadDir(dir)
	switch {
	case dirErr == nil:
		n, where = len(entries), dir
	default:
		smi := p.NvidiaSMI
		if smi == "" {
			smi = "nvidia-smi"
		}
		// nvidia-smi hangs when the driver is wedged; never wait on it long.
		ctx, cancel := context.WithTimeout(context.Background(), SMITimeout)
		out, smiErr := exec.CommandContext(ctx, smi, "-L").Output()
		cancel()
		if smiErr != nil {
			return 0, "", fmt.Errorf("no NVIDIA driver found (%s: %v; %s -L: %v)", dir, dirErr, smi, smiErr)
		}
		n, where = CountNvidiaSMIList(string(out)), smi+" -L"
	}
	lookupEnv := p.LookupEnv
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if v, set := lookupEnv("CUDA_VISIBLE_DEVICES"); set {
		visible := VisibleDevices(v)
		if visible < n {
			n = visible
		}
		where += ", CUDA_VISIBLE_DEVICES=" + v
	}
	return n, where, nil
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

// checkUUID confirms that the GPU named by its UUID is on this machine:
// `nvidia-smi -L` lists it, or, without nvidia-smi, a driver entry under
// /proc/driver/nvidia/gpus names it.
func (p DeviceProbe) checkUUID(d Device) error {
	uuids, where, err := p.GPUUUIDs()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDeviceUnavailable, d.Raw, err)
	}
	if !slices.Contains(uuids, d.UUID) {
		return fmt.Errorf("%w: %s: no such GPU (%s lists %s)", ErrDeviceUnavailable, d.Raw, where, strings.Join(uuids, ", "))
	}
	return nil
}

// GPUUUIDs lists the UUIDs of this machine's NVIDIA GPUs, from
// `nvidia-smi -L` or, when that fails, the driver's information files.
func (p DeviceProbe) GPUUUIDs() (uuids []string, where string, err error) {
	smi := p.NvidiaSMI
	if smi == "" {
		smi = "nvidia-smi"
	}
	ctx, cancel := context.WithTimeout(context.Background(), SMITimeout)
	out, smiErr := exec.CommandContext(ctx, smi, "-L").Output()
	cancel()
	if smiErr == nil {
		for _, m := range smiUUIDRe.FindAllStringSubmatch(string(out), -1) {
			uuids = append(uuids, m[1])
		}
		return uuids, smi + " -L", nil
	}
	dir := p.NvidiaProcDir
	if dir == "" {
		dir = "/proc/driver/nvidia/gpus"
	}
	infos, _ := filepath.Glob(filepath.Join(dir, "*", "information"))
	if len(infos) == 0 {
		return nil, "", fmt.Errorf("no NVIDIA driver found (%s -L: %v; no %s/*/information)", smi, smiErr, dir)
	}
	for _, f := range infos {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "GPU UUID" {
				uuids = append(uuids, strings.TrimSpace(v))
			}
		}
	}
	return uuids, dir, nil
}
