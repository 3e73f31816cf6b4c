//go:build unix

package spawner

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMetalGPUs_FromSystemProfiler(t *testing.T) {
	for file, want := range map[string][]string{
		"system_profiler_m2.json":        {"Apple M2 Pro"},
		"system_profiler_old_intel.json": nil,
	} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := metalGPUs(b)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: metalGPUs = %q, %v; want %q", file, got, err, want)
		}
	}
	if _, err := metalGPUs([]byte("not json")); err == nil {
		t.Error("metalGPUs of garbage: no error")
	}
}

// fakeProfiler is a system_profiler that prints the given testdata file.
func fakeProfiler(t *testing.T, file string) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "system_profiler")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n[ \"$1 $2\" = 'SPDisplaysDataType -json' ] || exit 64\ncat '"+abs+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDeviceProbe_MetalCheckedAgainstTheGPU(t *testing.T) {
	metal, err := ParseDevice("metal")
	if err != nil {
		t.Fatal(err)
	}
	if err := (DeviceProbe{GOOS: "darwin", SystemProfiler: fakeProfiler(t, "system_profiler_m2.json")}).Check(metal); err != nil {
		t.Errorf("metal on an M2: %v, want nil", err)
	}
	err = DeviceProbe{GOOS: "darwin", SystemProfiler: fakeProfiler(t, "system_profiler_old_intel.json")}.Check(metal)
	if !errors.Is(err, ErrDeviceUnavailable) {
		t.Errorf("metal on a Mac without Metal: %v, want ErrDeviceUnavailable", err)
	}
	err = DeviceProbe{GOOS: "darwin", SystemProfiler: filepath.Join(t.TempDir(), "missing")}.Check(metal)
	if !errors.Is(err, ErrDeviceUnavailable) {
		t.Errorf("metal without system_profiler: %v, want ErrDeviceUnavailable", err)
	}
}
