//go:build unix

package spawner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const h100UUID = "GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9"

func TestDeviceProbe_GPUUUIDFromNvidiaSMI(t *testing.T) {
	p := DeviceProbe{GOOS: "linux", NvidiaProcDir: filepath.Join(t.TempDir(), "none"), NvidiaSMI: fakeSMI(t), LookupEnv: noEnv}
	if err := p.Check(mustParse(t, h100UUID)); err != nil {
		t.Errorf("%s (listed by the recorded nvidia-smi -L): got %v, want nil", h100UUID, err)
	}
	other := "GPU-00000000-4260-b95b-6164-2bbedf0b43a9"
	err := p.Check(mustParse(t, other))
	if !errors.Is(err, ErrDeviceUnavailable) {
		t.Fatalf("%s: got %v, want ErrDeviceUnavailable", other, err)
	}
	if !strings.Contains(err.Error(), h100UUID) {
		t.Errorf("error %q does not list the GPUs there are", err)
	}
}

// Without nvidia-smi, the driver's information files name the GPUs.
func TestDeviceProbe_GPUUUIDFromDriverFiles(t *testing.T) {
	info := readFixture(t, "proc-gpus-information.txt")
	// The fixture is a shell trace around the file; keep the file's lines.
	var lines []string
	for _, l := range strings.Split(info, "\n") {
		if !strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "==") {
			lines = append(lines, l)
		}
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "0000:00:06.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0000:00:06.0", "information"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	p := DeviceProbe{GOOS: "linux", NvidiaProcDir: dir, NvidiaSMI: filepath.Join(dir, "no-such-nvidia-smi"), LookupEnv: noEnv}
	if err := p.Check(mustParse(t, h100UUID)); err != nil {
		t.Errorf("%s from the driver's information file: got %v, want nil", h100UUID, err)
	}
	none := DeviceProbe{GOOS: "linux", NvidiaProcDir: filepath.Join(dir, "none"), NvidiaSMI: filepath.Join(dir, "no-such-nvidia-smi"), LookupEnv: noEnv}
	if err := none.Check(mustParse(t, h100UUID)); !errors.Is(err, ErrDeviceUnavailable) || !strings.Contains(err.Error(), "no NVIDIA driver") {
		t.Errorf("without a driver: got %v, want ErrDeviceUnavailable saying the driver is missing", err)
	}
}

func TestResolveBinary_AbsolutePath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "llama-server")
	writeExe(t, exe)
	if got, err := ResolveBinary(exe, []string{t.TempDir()}); err != nil || got != exe {
		t.Errorf("ResolveBinary(%s) = %q, %v; want the path itself", exe, got, err)
	}
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveBinary(plain, nil); !errors.Is(err, ErrBinaryNotFound) {
		t.Errorf("ResolveBinary(non-executable) = %v, want ErrBinaryNotFound", err)
	}
	if got, err := ResolveBinary("llama-server", []string{dir}); err != nil || got != exe {
		t.Errorf("ResolveBinary(name in dir) = %q, %v; want %s", got, err, exe)
	}
}

func TestStartEnv_Order(t *testing.T) {
	agent := []string{"PATH=/bin", "NATS_URL=nats://secret", "HIVE_ID=h", "CUDA_VISIBLE_DEVICES=2,3", "HOME=/root"}
	w := Worker{HiveID: "h1", WorkerID: "w1", Port: 9100, HealthPath: "/health", ReadyStatus: 200}
	got := StartEnv(agent, []string{"CUDA_VISIBLE_DEVICES=3", "OMP_NUM_THREADS=4"}, w)
	want := append([]string{"PATH=/bin", "HOME=/root", "CUDA_VISIBLE_DEVICES=3", "OMP_NUM_THREADS=4"}, markerEnv(w)...)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("StartEnv =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
