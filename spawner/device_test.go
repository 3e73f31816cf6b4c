//go:build unix

package spawner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// h100Fixtures is the recorded output of a machine with one H100, copied
// from the project's shared/fixtures so that a clone alone runs every test.
const h100Fixtures = "testdata/nvidia-h100-1gpu"

func fixtureDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(h100Fixtures)
	if err != nil {
		t.Fatalf("fixtures: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("GPU fixtures not found at %s: %v", dir, err)
	}
	return dir
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir(t), name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return string(b)
}

// fakeProcGPUs builds a directory like /proc/driver/nvidia/gpus holding one
// entry (a directory with an information file) per bus location.
func fakeProcGPUs(t *testing.T, busIDs []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gpus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, id := range busIDs {
		if err := os.Mkdir(filepath.Join(dir, id), 0o755); err != nil {
			t.Fatal(err)
		}
		info := "Model: \t\t NVIDIA H100 80GB HBM3\nBus Location: \t " + id + "\n"
		if err := os.WriteFile(filepath.Join(dir, id, "information"), []byte(info), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// recordedBusIDs are the entry names of the recorded one-GPU driver directory.
func recordedBusIDs(t *testing.T) []string {
	t.Helper()
	return strings.Fields(readFixture(t, "proc-gpus-ls.txt"))
}

// derivedBusIDs derives n entry names from the recorded one: the recorded
// 0000:00:06.0 becomes 0000:00:06.0, 0000:00:07.0, …
func derivedBusIDs(t *testing.T, n int) []string {
	t.Helper()
	rec := recordedBusIDs(t)
	if len(rec) != 1 {
		t.Fatalf("recorded fixture has %d GPUs, want 1", len(rec))
	}
	var domain, bus string
	var slot, fn int
	if _, err := fmt.Sscanf(strings.ReplaceAll(rec[0], ":", " "), "%s %s %x.%d", &domain, &bus, &slot, &fn); err != nil {
		t.Fatalf("parse bus id %q: %v", rec[0], err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s:%s:%02x.%d", domain, bus, slot+i, fn)
	}
	if ids[0] != rec[0] {
		t.Fatalf("derived %q from %q", ids[0], rec[0])
	}
	return ids
}

// noEnv is a LookupEnv with nothing set, so the agent's own
// CUDA_VISIBLE_DEVICES never leaks into these tests.
func noEnv(string) (string, bool) { return "", false }

func envWith(key, val string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if k == key {
			return val, true
		}
		return "", false
	}
}

func mustParse(t testing.TB, s string) Device {
	t.Helper()
	d, err := ParseDevice(s)
	if err != nil {
		t.Fatalf("ParseDevice(%q): %v", s, err)
	}
	return d
}

func TestParseDevice(t *testing.T) {
	good := []struct {
		in    string
		typ   WorkerType
		index int
	}{
		{"cpu", CPU, -1},
		{"CPU-0", CPU, 0},
		{"CPU-12", CPU, 12},
		{"CPU-9999", CPU, 9999},
		{"cuda:0", CUDA, 0},
		{"cuda:7", CUDA, 7},
		{"GPU-0", CUDA, 0},
		{"GPU-3", CUDA, 3},
		{"metal", Metal, -1},
	}
	const uuid = "GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9"
	if got, err := ParseDevice(uuid); err != nil || got != (Device{Raw: uuid, Type: CUDA, Index: -1, UUID: uuid}) {
		t.Errorf("ParseDevice(%q) = %+v, %v; want a CUDA device with its UUID", uuid, got, err)
	}
	for _, tt := range good {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDevice(tt.in)
			if err != nil {
				t.Fatalf("ParseDevice(%q): %v", tt.in, err)
			}
			want := Device{Raw: tt.in, Type: tt.typ, Index: tt.index}
			if got != want {
				t.Errorf("ParseDevice(%q) = %+v, want %+v", tt.in, got, want)
			}
		})
	}
	bad := []string{
		"", "CPU", "Cpu", "cpu-1", "cpu:0", "CPU-", "CPU-x", "CPU-12345",
		"cuda", "cuda:", "cuda:-1", "cuda:a", "CUDA:0", "cuda:12345", "cuda0",
		"gpu-0", "GPU-", "GPU:0", "Metal", "METAL", "mps",
		" cpu", "cpu ", "cpu\n", "cuda:0\n", "cuda:0,1", "cpu;rm -rf /",
		"GPU-F6A4B594-4260-B95B-6164-2BBEDF0B43A9", "GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a", "GPU-f6a4b594",
		"GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9\n", "MIG-f6a4b594-4260-b95b-6164-2bbedf0b43a9",
	}
	for _, in := range bad {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			got, err := ParseDevice(in)
			if err == nil {
				t.Fatalf("ParseDevice(%q) = %+v, want an error", in, got)
			}
			if !strings.Contains(err.Error(), "want "+DeviceSyntax) {
				t.Errorf("error %q does not list the valid forms", err)
			}
		})
	}
}

func TestDeviceProbe_Metal(t *testing.T) {
	metal := mustParse(t, "metal")
	err := DeviceProbe{GOOS: "linux", LookupEnv: noEnv}.Check(metal)
	if !errors.Is(err, ErrDeviceUnavailable) {
		t.Errorf("metal on linux: got %v, want ErrDeviceUnavailable", err)
	}
	if err != nil && !strings.Contains(err.Error(), "linux") {
		t.Errorf("metal on linux: error %q does not say the host's OS", err)
	}
	if err := (DeviceProbe{GOOS: "darwin", LookupEnv: noEnv}).Check(metal); err != nil {
		t.Errorf("metal on darwin: got %v, want nil", err)
	}
}

func TestDeviceProbe_CUDAOnDarwin(t *testing.T) {
	// Even with a driver directory that shows a GPU, macOS has no CUDA.
	p := DeviceProbe{GOOS: "darwin", NvidiaProcDir: fakeProcGPUs(t, []string{"0000:00:06.0"}), LookupEnv: noEnv}
	for _, dev := range []string{"cuda:0", "GPU-0"} {
		if err := p.Check(mustParse(t, dev)); !errors.Is(err, ErrDeviceUnavailable) {
			t.Errorf("%s on darwin: got %v, want ErrDeviceUnavailable", dev, err)
		}
	}
}

func TestDeviceProbe_CPU(t *testing.T) {
	tests := []struct {
		dev    string
		numCPU int
		ok     bool
	}{
		{"cpu", 1, true},
		{"CPU-0", 1, true},
		{"CPU-1", 1, false},
		{"CPU-3", 4, true},
		{"CPU-4", 4, false},
		{"CPU-9999", 4, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s with %d CPUs", tt.dev, tt.numCPU), func(t *testing.T) {
			err := DeviceProbe{NumCPU: tt.numCPU, LookupEnv: noEnv}.Check(mustParse(t, tt.dev))
			if tt.ok && err != nil {
				t.Errorf("got %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrDeviceUnavailable) {
				t.Errorf("got %v, want ErrDeviceUnavailable", err)
			}
		})
	}
	t.Run("this machine", func(t *testing.T) {
		n := runtime.NumCPU()
		p := DeviceProbe{}
		if err := p.Check(mustParse(t, fmt.Sprintf("CPU-%d", n-1))); err != nil {
			t.Errorf("CPU-%d with %d CPUs: got %v, want nil", n-1, n, err)
		}
		if err := p.Check(mustParse(t, fmt.Sprintf("CPU-%d", n))); !errors.Is(err, ErrDeviceUnavailable) {
			t.Errorf("CPU-%d with %d CPUs: got %v, want ErrDeviceUnavailable", n, n, err)
		}
	})
}

func TestDeviceProbe_CUDAFromDriverDir(t *testing.T) {
	oneGPU := fakeProcGPUs(t, recordedBusIDs(t))
	fourGPUs := fakeProcGPUs(t, derivedBusIDs(t, 4))
	// The smi must not be consulted while the driver directory exists.
	noSMI := filepath.Join(t.TempDir(), "no-nvidia-smi")
	tests := []struct {
		name string
		dir  string
		dev  string
		ok   bool
	}{
		{"one GPU", oneGPU, "cuda:0", true},
		{"one GPU", oneGPU, "GPU-0", true},
		{"one GPU", oneGPU, "cuda:1", false},
		{"one GPU", oneGPU, "GPU-1", false},
		{"four GPUs", fourGPUs, "cuda:0", true},
		{"four GPUs", fourGPUs, "cuda:3", true},
		{"four GPUs", fourGPUs, "GPU-3", true},
		{"four GPUs", fourGPUs, "cuda:4", false},
		{"four GPUs", fourGPUs, "GPU-4", false},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+tt.dev, func(t *testing.T) {
			p := DeviceProbe{GOOS: "linux", NvidiaProcDir: tt.dir, NvidiaSMI: noSMI, LookupEnv: noEnv}
			err := p.Check(mustParse(t, tt.dev))
			if tt.ok && err != nil {
				t.Errorf("got %v, want nil", err)
			}
			if !tt.ok {
				if !errors.Is(err, ErrDeviceUnavailable) {
					t.Fatalf("got %v, want ErrDeviceUnavailable", err)
				}
				if !strings.Contains(err.Error(), tt.dir) {
					t.Errorf("error %q does not say what was counted (%s)", err, tt.dir)
				}
			}
		})
	}
}

func TestDeviceProbe_NoDriver(t *testing.T) {
	tmp := t.TempDir()
	p := DeviceProbe{
		GOOS:          "linux",
		NvidiaProcDir: filepath.Join(tmp, "no-such-gpus-dir"),
		NvidiaSMI:     filepath.Join(tmp, "no-such-nvidia-smi"),
		LookupEnv:     noEnv,
	}
	err := p.Check(mustParse(t, "cuda:0"))
	if !errors.Is(err, ErrDeviceUnavailable) {
		t.Fatalf("cuda:0 without a driver: got %v, want ErrDeviceUnavailable", err)
	}
	if !strings.Contains(err.Error(), "no NVIDIA driver") {
		t.Errorf("error %q does not say the driver is missing", err)
	}
	// cpu needs no driver.
	if err := p.Check(mustParse(t, "cpu")); err != nil {
		t.Errorf("cpu without a driver: got %v, want nil", err)
	}
}

// fakeSMI writes an nvidia-smi that prints the recorded `nvidia-smi -L`.
func fakeSMI(t *testing.T) string {
	t.Helper()
	fixture := filepath.Join(fixtureDir(t), "nvidia-smi-L.txt")
	smi := filepath.Join(t.TempDir(), "nvidia-smi")
	script := "#!/bin/sh\n[ \"$1\" = -L ] || { echo \"want -L, got $*\" >&2; exit 9; }\nexec cat '" + fixture + "'\n"
	if err := os.WriteFile(smi, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return smi
}

func TestDeviceProbe_CUDAFromNvidiaSMI(t *testing.T) {
	p := DeviceProbe{
		GOOS:          "linux",
		NvidiaProcDir: filepath.Join(t.TempDir(), "no-such-gpus-dir"),
		NvidiaSMI:     fakeSMI(t),
		LookupEnv:     noEnv,
	}
	n, where, err := p.CountGPUs()
	if err != nil {
		t.Fatalf("CountGPUs: %v", err)
	}
	if n != 1 {
		t.Errorf("CountGPUs = %d, want 1", n)
	}
	if want := p.NvidiaSMI + " -L"; where != want {
		t.Errorf("CountGPUs where = %q, want %q", where, want)
	}
	if err := p.Check(mustParse(t, "cuda:0")); err != nil {
		t.Errorf("cuda:0: got %v, want nil", err)
	}
	if err := p.Check(mustParse(t, "cuda:1")); !errors.Is(err, ErrDeviceUnavailable) {
		t.Errorf("cuda:1: got %v, want ErrDeviceUnavailable", err)
	}
}

func TestDeviceProbe_CUDAVisibleDevices(t *testing.T) {
	oneGPU := fakeProcGPUs(t, recordedBusIDs(t))
	fourGPUs := fakeProcGPUs(t, derivedBusIDs(t, 4))
	tests := []struct {
		name    string
		dir     string
		visible string
		want    int
	}{
		{"empty hides every GPU", oneGPU, "", 0},
		{"one of one", oneGPU, "0", 1},
		{"more listed than exist", oneGPU, "0,1,2", 1},
		{"two of four", fourGPUs, "0,1", 2},
		{"all four", fourGPUs, "0,1,2,3", 4},
		{"spaces", fourGPUs, " 2 , 3 ", 2},
		{"minus one hides every GPU", fourGPUs, "-1", 0},
		{"stops at the first invalid entry", fourGPUs, "1,-1,2", 1},
		{"stops at an empty entry", fourGPUs, "1,,2", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DeviceProbe{GOOS: "linux", NvidiaProcDir: tt.dir, LookupEnv: envWith("CUDA_VISIBLE_DEVICES", tt.visible)}
			got, where, err := p.CountGPUs()
			if err != nil {
				t.Fatalf("CountGPUs: %v", err)
			}
			if got != tt.want {
				t.Errorf("CountGPUs with CUDA_VISIBLE_DEVICES=%q = %d, want %d", tt.visible, got, tt.want)
			}
			if !strings.Contains(where, "CUDA_VISIBLE_DEVICES="+tt.visible) {
				t.Errorf("where %q does not mention CUDA_VISIBLE_DEVICES", where)
			}
			// Check agrees with the count.
			if tt.want > 0 {
				if err := p.Check(mustParse(t, fmt.Sprintf("cuda:%d", tt.want-1))); err != nil {
					t.Errorf("cuda:%d: got %v, want nil", tt.want-1, err)
				}
			}
			refused := p.Check(mustParse(t, fmt.Sprintf("cuda:%d", tt.want)))
			if !errors.Is(refused, ErrDeviceUnavailable) {
				t.Errorf("cuda:%d: got %v, want ErrDeviceUnavailable", tt.want, refused)
			}
		})
	}
}

func TestVisibleDevices(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0}, {"0", 1}, {"0,1", 2}, {"-1", 0}, {"1,-1,2", 1}, {"3,2,1,0", 4},
		{"GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9", 1},
	}
	for _, tt := range tests {
		if got := VisibleDevices(tt.in); got != tt.want {
			t.Errorf("VisibleDevices(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestCountNvidiaSMIList(t *testing.T) {
	out := readFixture(t, "nvidia-smi-L.txt")
	if got := CountNvidiaSMIList(out); got != 1 {
		t.Errorf("CountNvidiaSMIList(recorded H100 output) = %d, want 1", got)
	}
	// Four GPUs, derived from the recorded line.
	line := strings.TrimSpace(out)
	var four strings.Builder
	for i := range 4 {
		four.WriteString(strings.Replace(line, "GPU 0:", fmt.Sprintf("GPU %d:", i), 1) + "\n")
	}
	if got := CountNvidiaSMIList(four.String()); got != 4 {
		t.Errorf("CountNvidiaSMIList(four GPUs) = %d, want 4", got)
	}
	if got := CountNvidiaSMIList(""); got != 0 {
		t.Errorf("CountNvidiaSMIList(\"\") = %d, want 0", got)
	}
	// The plain nvidia-smi table has no "GPU N:" lines at the start of a line.
	if got := CountNvidiaSMIList(readFixture(t, "nvidia-smi.txt")); got != 0 {
		t.Errorf("CountNvidiaSMIList(plain nvidia-smi table) = %d, want 0", got)
	}
}

// writeExe writes an executable file.
func writeExe(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	name := CPU.Binary()
	if name != "cpu-llm-worker-rbee" {
		t.Fatalf("CPU.Binary() = %q, want cpu-llm-worker-rbee", name)
	}
	// An empty PATH directory, so nothing on the real PATH can answer.
	emptyPath := t.TempDir()
	t.Setenv("PATH", emptyPath)

	t.Run("first dir wins", func(t *testing.T) {
		d1, d2 := t.TempDir(), t.TempDir()
		writeExe(t, filepath.Join(d1, name))
		writeExe(t, filepath.Join(d2, name))
		checkResolve(t, []string{d1, d2}, filepath.Join(d1, name))
	})
	t.Run("searched in order", func(t *testing.T) {
		d1, d2 := t.TempDir(), t.TempDir()
		writeExe(t, filepath.Join(d2, name))
		checkResolve(t, []string{d1, d2}, filepath.Join(d2, name))
	})
	t.Run("dirs before PATH", func(t *testing.T) {
		d1, onPath := t.TempDir(), t.TempDir()
		writeExe(t, filepath.Join(d1, name))
		writeExe(t, filepath.Join(onPath, name))
		t.Setenv("PATH", onPath)
		checkResolve(t, []string{d1}, filepath.Join(d1, name))
	})
	t.Run("non-executable file skipped", func(t *testing.T) {
		d1, d2 := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(d1, name), []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		writeExe(t, filepath.Join(d2, name))
		checkResolve(t, []string{d1, d2}, filepath.Join(d2, name))
	})
	t.Run("directory named like the binary skipped", func(t *testing.T) {
		d1, d2 := t.TempDir(), t.TempDir()
		if err := os.Mkdir(filepath.Join(d1, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeExe(t, filepath.Join(d2, name))
		checkResolve(t, []string{d1, d2}, filepath.Join(d2, name))
	})
	t.Run("relative dir gives an absolute path", func(t *testing.T) {
		d := t.TempDir()
		writeExe(t, filepath.Join(d, name))
		t.Chdir(filepath.Dir(d))
		checkResolve(t, []string{filepath.Base(d)}, filepath.Join(d, name))
	})
	t.Run("falls back to PATH", func(t *testing.T) {
		d1, onPath := t.TempDir(), t.TempDir()
		writeExe(t, filepath.Join(onPath, name))
		t.Setenv("PATH", emptyPath+string(os.PathListSeparator)+onPath)
		checkResolve(t, []string{d1}, filepath.Join(onPath, name))
	})
	t.Run("missing", func(t *testing.T) {
		d1, d2 := t.TempDir(), t.TempDir()
		// Present for another type only, and as a non-executable file.
		writeExe(t, filepath.Join(d1, CUDA.Binary()))
		if err := os.WriteFile(filepath.Join(d2, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Resolve(CPU, []string{d1, d2})
		if !errors.Is(err, ErrBinaryNotFound) {
			t.Fatalf("Resolve: got %v, want ErrBinaryNotFound", err)
		}
		for _, want := range []string{name, d1, d2, "PATH", emptyPath} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	})
	t.Run("missing without dirs", func(t *testing.T) {
		_, err := Resolve(Metal, nil)
		if !errors.Is(err, ErrBinaryNotFound) {
			t.Fatalf("Resolve: got %v, want ErrBinaryNotFound", err)
		}
		if !strings.Contains(err.Error(), "PATH ("+emptyPath+")") {
			t.Errorf("error %q does not name PATH", err)
		}
	})
}

// checkResolve fails t unless Resolve(CPU, dirs) finds want.
func checkResolve(t *testing.T, dirs []string, want string) {
	t.Helper()
	got, err := Resolve(CPU, dirs)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Resolve = %q, want %q", got, want)
	}
}
