// Package catalog holds hive-agent's worker types: which binary serves a
// model, with which argument and environment templates, on which device
// kinds, how its readiness is probed and whether it is restarted. The three
// rbee types are built in; an operator's catalog file adds types (llama.cpp,
// vLLM, ...) or overrides the built-in ones by name.
//
// The package is pure: it reads and validates a file and turns a type plus a
// spawn into an argument vector and environment. It starts no process and
// knows nothing of NATS; the spawner receives the finished argv and env.
package catalog

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Device kinds a type may accept.
const (
	KindCPU   = "cpu"
	KindCUDA  = "cuda"
	KindMetal = "metal"
)

// Kinds lists the device kinds, in the order messages name them.
var Kinds = []string{KindCPU, KindCUDA, KindMetal}

// Restart policies.
const (
	RestartNo        = "no"
	RestartOnFailure = "on-failure"
)

// Wait modes a type may default to; they match the spawn request's wait.
const (
	WaitExec  = "exec"
	WaitAlive = "alive"
	WaitReady = "ready"
)

// Defaults for keys a type leaves out.
const (
	DefaultHealthPath  = "/health"
	DefaultReadyStatus = 200
	DefaultMaxRestarts = 3
)

// DefaultLoadingStatus is the health status that means "alive, still
// loading" when a type does not say otherwise: llama.cpp's llama-server
// answers 503 while it loads the model.
var DefaultLoadingStatus = []int{503}

var (
	// ErrUnknownType is wrapped by the error for a worker_type the catalog
	// does not have; errors.As to *UnknownTypeError gives the known names.
	ErrUnknownType = errors.New("unknown worker type")
	// ErrDeviceNotAccepted is wrapped when a type does not accept the
	// device kind of a spawn (the wire code is device_unavailable).
	ErrDeviceNotAccepted = errors.New("device not accepted by worker type")
	// ErrNoDeviceIndex is wrapped when an argument uses {device_index} but
	// the device has no index (cpu, metal, an unresolved GPU UUID).
	ErrNoDeviceIndex = errors.New("device has no index")
)

// UnknownTypeError names a worker type that is not in the catalog, and the
// types that are, so that the reply can list them.
type UnknownTypeError struct {
	Name  string
	Known []string
}

func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("%v %q: known types are %s", ErrUnknownType, e.Name, strings.Join(e.Known, ", "))
}

// Unwrap makes errors.Is(err, ErrUnknownType) true.
func (e *UnknownTypeError) Unwrap() error { return ErrUnknownType }

// Type is one worker type: everything needed to start and watch a worker
// except the spawn's own values. The zero value of an optional field means
// "the agent's default" where the field says so.
type Type struct {
	// Name is the type's name, the spawn's worker_type.
	Name string
	// Description is a free text shown by catalog check.
	Description string
	// Binary is a file name looked up in the worker directories then PATH,
	// or an absolute path used as is.
	Binary string
	// Args are the argument templates, one argument each.
	Args []string
	// Env holds extra environment templates for the worker.
	Env map[string]string
	// Devices are the device kinds the type accepts.
	Devices []string
	// HealthPath is probed for readiness; default /health.
	HealthPath string
	// ReadyStatus is the health status that means ready; default 200.
	ReadyStatus int
	// LoadingStatus are health statuses that mean "alive, still loading":
	// they count as progress for StallTimeout. Default [503].
	LoadingStatus []int
	// Wait is the type's default wait mode; empty: the agent's default.
	Wait string
	// ReadyTimeout bounds a wait for ready; 0: the agent's default.
	ReadyTimeout time.Duration
	// StallTimeout ends a wait for ready early when the worker shows no
	// progress (no log output, no loading answer) for this long; 0: off.
	StallTimeout time.Duration
	// Restart is the restart policy, RestartNo or RestartOnFailure.
	Restart string
	// MaxRestarts bounds restarts under on-failure; default 3.
	MaxRestarts int
	// Health is how the type's workers are checked after ready.
	Health Health
	// PinGPU sets CUDA_VISIBLE_DEVICES to the spawn's GPU for CUDA
	// devices. On by default for file types, off for the built-in rbee
	// types, whose workers select the GPU from --device themselves.
	PinGPU bool
	// VRAMMiB is the GPU memory (MiB) a spawn of this type needs free on
	// its GPU, unless the spawn's min_free_vram_mib says otherwise; 0: no
	// check.
	VRAMMiB int
	// Builtin is true for a built-in type that no file overrode.
	Builtin bool
	// Source says where the type was defined: "builtin" or file:line.
	Source string
}

// Accepts reports whether the type runs on devices of kind (cpu, cuda, metal).
func (t Type) Accepts(kind string) bool { return slices.Contains(t.Devices, kind) }

// Catalog is a validated set of worker types. It is immutable once built,
// so it is safe for concurrent use.
type Catalog struct {
	// Source is the file it was read from, or "builtin".
	Source   string
	types    map[string]Type
	defaults map[string]string // device kind -> type name
}

// rbeeArgs is the rbee worker contract: the argument vector spawner.Start
// has always passed.
var rbeeArgs = []string{
	"--worker-id", "{worker_id}", "--model", "{model_id}", "--device", "{device}",
	"--port", "{port}", "--queen-url", "{queen_url}",
}

func builtinType(name, kind string) Type {
	return Type{
		Name: name, Description: "rbee " + kind + " worker",
		Binary: name + "-worker-rbee", Args: slices.Clone(rbeeArgs), Devices: []string{kind},
		HealthPath: DefaultHealthPath, ReadyStatus: DefaultReadyStatus,
		LoadingStatus: slices.Clone(DefaultLoadingStatus),
		Restart:       RestartNo, MaxRestarts: DefaultMaxRestarts, Builtin: true, Source: "builtin",
	}
}

// Builtin returns the catalog every agent has without a file: the rbee
// types cpu-llm, cuda-llm and metal-llm, each the default for its kind.
func Builtin() *Catalog {
	c := &Catalog{Source: "builtin", types: map[string]Type{}, defaults: map[string]string{}}
	for _, kind := range Kinds {
		name := kind + "-llm"
		c.types[name] = builtinType(name, kind)
		c.defaults[kind] = name
	}
	return c
}

// Type returns the type called name.
func (c *Catalog) Type(name string) (Type, bool) {
	t, ok := c.types[name]
	if ok {
		t = t.clone()
	}
	return t, ok
}

// Names lists the type names, sorted.
func (c *Catalog) Names() []string {
	names := make([]string, 0, len(c.types))
	for n := range c.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ForDevice returns the type a spawn without worker_type gets on a device
// of kind: the rbee type of that kind unless the file's default_types names
// another. The error wraps ErrDeviceNotAccepted for an unknown kind.
func (c *Catalog) ForDevice(kind string) (Type, error) {
	name, ok := c.defaults[kind]
	if !ok {
		return Type{}, fmt.Errorf("%w: no worker type for device kind %q", ErrDeviceNotAccepted, kind)
	}
	return c.Lookup(name, kind)
}

// Lookup returns the type for a spawn: name when given (an
// *UnknownTypeError when the catalog has no such type), else the default
// for kind. The error wraps ErrDeviceNotAccepted when the type does not
// run on devices of kind.
func (c *Catalog) Lookup(name, kind string) (Type, error) {
	if name == "" {
		return c.ForDevice(kind)
	}
	t, ok := c.Type(name)
	if !ok {
		return Type{}, &UnknownTypeError{Name: name, Known: c.Names()}
	}
	if !t.Accepts(kind) {
		return Type{}, fmt.Errorf("%w: worker type %s runs on %s, not %s",
			ErrDeviceNotAccepted, name, strings.Join(t.Devices, ", "), kind)
	}
	return t, nil
}

// DefaultFor names the default type of each device kind.
func (c *Catalog) DefaultFor(kind string) string { return c.defaults[kind] }

func (t Type) clone() Type {
	t.Args = slices.Clone(t.Args)
	t.Devices = slices.Clone(t.Devices)
	t.LoadingStatus = slices.Clone(t.LoadingStatus)
	if t.Env != nil {
		env := make(map[string]string, len(t.Env))
		for k, v := range t.Env {
			env[k] = v
		}
		t.Env = env
	}
	return t
}
