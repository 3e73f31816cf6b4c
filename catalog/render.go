package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Placeholders are the names a template may use, as {name}.
var Placeholders = []string{"worker_id", "model_id", "port", "device", "device_index", "queen_url", "hive_id"}

// placeholderRe matches {name}. Braces around anything else (JSON such as
// {"level":3}) are literal text, so JSON arguments need no escaping.
var placeholderRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// markerPrefix starts the variables of the spawner's worker marker; a
// catalog must not set them.
const markerPrefix = "HIVE_AGENT_"

// CUDAVisibleDevices is the variable that pins a CUDA worker to its GPU.
const CUDAVisibleDevices = "CUDA_VISIBLE_DEVICES"

func checkTemplate(r *reader, s string, line, col int, field string) {
	for _, m := range placeholderRe.FindAllStringSubmatch(s, -1) {
		if !slices.Contains(Placeholders, m[1]) {
			r.ps.add(line, col, field, "unknown placeholder {%s}; known: {%s}", m[1], strings.Join(Placeholders, "}, {"))
		}
	}
}

// Params are one spawn's values for a type's templates.
type Params struct {
	WorkerID string
	ModelID  string
	// Port is the worker's port, already chosen (1-65535).
	Port int
	// Device is the spawn's device exactly as given: cpu, CPU-N, cuda:N,
	// GPU-N, GPU-<uuid> (as `nvidia-smi -L` prints it) or metal.
	Device string
	// DeviceIndex is the device's index as the agent numbers it (N of
	// cuda:N, GPU-N, CPU-N; the index of a GPU-<uuid> when the caller
	// resolved it), or -1 when there is none.
	DeviceIndex int
	QueenURL    string
	HiveID      string
	// AgentVisibleDevices is the agent's own CUDA_VISIBLE_DEVICES, or ""
	// when unset. The agent counts cuda:N within that list, so the worker
	// is pinned to its Nth entry rather than to host GPU N.
	AgentVisibleDevices string
}

var (
	cpuRe     = regexp.MustCompile(`^(?:cpu|CPU-[0-9]{1,4})$`)
	cudaRe    = regexp.MustCompile(`^(?:cuda:[0-9]{1,4}|GPU-[0-9]{1,4})$`)
	gpuUUIDRe = regexp.MustCompile(`^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// IsGPUUUID reports whether device names a GPU by its UUID, e.g.
// GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9 as `nvidia-smi -L` prints it.
func IsGPUUUID(device string) bool { return gpuUUIDRe.MatchString(device) }

// DeviceKind is the kind (cpu, cuda, metal) of a device string.
func DeviceKind(device string) (string, error) {
	switch {
	case cpuRe.MatchString(device):
		return KindCPU, nil
	case cudaRe.MatchString(device), IsGPUUUID(device):
		return KindCUDA, nil
	case device == "metal":
		return KindMetal, nil
	}
	return "", fmt.Errorf("device %q: want cpu, CPU-N, cuda:N, GPU-N, GPU-<uuid> or metal", device)
}

// Render turns the type's templates and one spawn into the worker's
// arguments (without the binary: exec.Command(binaryPath, argv...)) and the
// extra environment ("KEY=value", sorted) to add to the worker's own. Each
// template is one argument whatever the values hold: spaces, quotes or a
// leading '-' never split or merge arguments, and no shell is involved.
// For a CUDA device the environment pins the GPU (see Type.PinGPU).
func (t Type) Render(p Params) (argv []string, env []string, err error) {
	kind, err := DeviceKind(p.Device)
	if err != nil {
		return nil, nil, err
	}
	if !t.Accepts(kind) {
		return nil, nil, fmt.Errorf("%w: worker type %s runs on %s, not %s",
			ErrDeviceNotAccepted, t.Name, strings.Join(t.Devices, ", "), p.Device)
	}
	if p.Port < 1 || p.Port > 65535 {
		return nil, nil, fmt.Errorf("render %s: port %d: want 1-65535", t.Name, p.Port)
	}
	values := map[string]string{
		"worker_id": p.WorkerID, "model_id": p.ModelID, "port": strconv.Itoa(p.Port),
		"device": p.Device, "queen_url": p.QueenURL, "hive_id": p.HiveID,
	}
	if p.DeviceIndex >= 0 {
		values["device_index"] = strconv.Itoa(p.DeviceIndex)
	}
	var errs []error
	expand := func(s, where string) string {
		return placeholderRe.ReplaceAllStringFunc(s, func(m string) string {
			name := m[1 : len(m)-1]
			v, ok := values[name]
			switch {
			case ok:
				return v
			case name == "device_index":
				errs = append(errs, fmt.Errorf("%s: %w: %s names no index (use pinning, or a device like cuda:N)", where, ErrNoDeviceIndex, p.Device))
			default:
				errs = append(errs, fmt.Errorf("%s: unknown placeholder %s", where, m))
			}
			return m
		})
	}
	argv = make([]string, len(t.Args))
	for i, a := range t.Args {
		argv[i] = expand(a, fmt.Sprintf("args[%d]", i))
	}
	for k, v := range t.Env {
		env = append(env, k+"="+expand(v, "env."+k))
	}
	if _, own := t.Env[CUDAVisibleDevices]; kind == KindCUDA && t.PinGPU && !own {
		gpu, err := pinnedGPU(p)
		if err != nil {
			errs = append(errs, err)
		}
		env = append(env, CUDAVisibleDevices+"="+gpu)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("render %s: %w", t.Name, err)
	}
	sort.Strings(env)
	return argv, env, nil
}

// pinnedGPU is the CUDA_VISIBLE_DEVICES value that shows the worker only
// the spawn's GPU.
func pinnedGPU(p Params) (string, error) {
	if IsGPUUUID(p.Device) {
		return p.Device, nil
	}
	if p.DeviceIndex < 0 {
		return "", fmt.Errorf("pin %s: %w", p.Device, ErrNoDeviceIndex)
	}
	if p.AgentVisibleDevices == "" {
		return strconv.Itoa(p.DeviceIndex), nil
	}
	// CUDA stops reading the list at the first invalid entry; so does the
	// agent's device check, which counted cuda:N against it.
	var visible []string
	for _, e := range strings.Split(p.AgentVisibleDevices, ",") {
		e = strings.TrimSpace(e)
		if e == "" || strings.HasPrefix(e, "-") {
			break
		}
		visible = append(visible, e)
	}
	if p.DeviceIndex >= len(visible) {
		return "", fmt.Errorf("pin %s: the agent's %s=%q shows %d GPU(s)",
			p.Device, CUDAVisibleDevices, p.AgentVisibleDevices, len(visible))
	}
	return visible[p.DeviceIndex], nil
}
