// Package fakesmi is a fake nvidia-smi for tests: Install builds
// ./nvidia-smi into a directory the test puts first on the agent's PATH,
// and the fake answers -L, --query-gpu and --query-compute-apps from a
// state file (state.json beside the binary) that the test rewrites.
package fakesmi

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// GPU is one fake GPU. MemoryUsedMiB is what is used besides the compute
// apps listed on it: the fake reports used = MemoryUsedMiB + the apps'
// memory, free = total - used, as the driver does.
type GPU struct {
	Index          int    `json:"index"`
	UUID           string `json:"uuid"`
	Name           string `json:"name"`
	MemoryTotalMiB int64  `json:"memory_total_mib"`
	MemoryUsedMiB  int64  `json:"memory_used_mib"`
}

// App is one compute process on a fake GPU.
type App struct {
	PID     int    `json:"pid"`
	GPUUUID string `json:"gpu_uuid"`
	UsedMiB int64  `json:"used_memory_mib"`
}

// Hang modes.
const (
	// HangSleep: the fake sleeps (until it is killed).
	HangSleep = "sleep"
	// HangChild: the fake starts a child in a session of its own that
	// holds stdout, then sleeps: killing the fake's group leaves the child
	// holding the pipe. The child's pid goes to <state>.held.
	HangChild = "child"
)

// State is what the fake answers.
type State struct {
	GPUs []GPU `json:"gpus"`
	Apps []App `json:"apps"`
	// Hang makes every call hang (HangSleep, HangChild); "" answers.
	Hang string `json:"hang,omitempty"`
	// ReapDead leaves out apps whose process is gone, as the driver does
	// once it freed their memory; without it a dead pid stays listed (a
	// driver that has not let go).
	ReapDead bool `json:"reap_dead,omitempty"`
}

// Fake is an installed fake nvidia-smi.
type Fake struct {
	// Dir holds the nvidia-smi binary: put it first on the PATH.
	Dir   string
	state string
}

// StatePath is the state file's path; calls are logged in StatePath()+".calls".
func (f *Fake) StatePath() string { return f.state }

// Install builds the fake into a new temporary directory and writes st.
func Install(t testing.TB, st State) *Fake {
	t.Helper()
	dir := t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "nvidia-smi"), "./nvidia-smi")
	cmd.Dir = filepath.Dir(file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fake nvidia-smi: %v\n%s", err, out)
	}
	f := &Fake{Dir: dir, state: filepath.Join(dir, "state.json")}
	f.Write(t, st)
	t.Cleanup(func() { f.killHeld(t) })
	return f
}

// Write replaces the state the fake answers from.
func (f *Fake) Write(t testing.TB, st State) {
	t.Helper()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tmp := f.state + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.state); err != nil {
		t.Fatal(err)
	}
}

// Calls returns the argument lists the fake was called with, one per call.
func (f *Fake) Calls(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(f.state + ".calls")
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// Held returns the pids of the children a HangChild call left.
func (f *Fake) Held(t testing.TB) []int {
	t.Helper()
	b, _ := os.ReadFile(f.state + ".held")
	var pids []int
	for _, s := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(s); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (f *Fake) killHeld(t testing.TB) {
	for _, pid := range f.Held(t) {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
			_, _ = p.Wait() // not our child: returns at once with an error
		}
	}
}

// FromQueryCSV builds GPUs from the recorded
// `--query-gpu=index,name,uuid,memory.total,memory.used,pci.bus_id
// --format=csv,noheader` output, copying the first GPU n times with
// derived UUIDs (the last digit counts up) when n is larger.
func FromQueryCSV(csv string, n int) ([]GPU, error) {
	var rec []GPU
	for _, line := range strings.Split(strings.TrimSpace(csv), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 5 {
			return nil, fmt.Errorf("recorded line %q: want 6 fields", line)
		}
		for i := range f {
			f[i] = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f[i]), "MiB"))
		}
		idx, err1 := strconv.Atoi(f[0])
		total, err2 := strconv.ParseInt(f[3], 10, 64)
		used, err3 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("recorded line %q: not index, name, uuid, total, used", line)
		}
		rec = append(rec, GPU{Index: idx, Name: f[1], UUID: f[2], MemoryTotalMiB: total, MemoryUsedMiB: used})
	}
	if len(rec) == 0 {
		return nil, fmt.Errorf("no GPU in the recorded output")
	}
	for i := len(rec); i < n; i++ {
		g := rec[0]
		g.Index = i
		g.UUID = g.UUID[:len(g.UUID)-1] + strconv.FormatInt(int64(i), 16)
		rec = append(rec, g)
	}
	return rec, nil
}
