//go:build unix

package spawner

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// A worker's type name, health path and ready status travel in its marker,
// so a Spawner of a later run (after an agent restart) probes the same URL.
func TestStart_MarkerKeepsTypeAndHealth(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	spec := h.spec(t, "typed", "m")
	spec.WorkerType, spec.HealthPath, spec.ReadyStatus = "tw", "/v1/ready", 200
	spec.Command = func(port int) ([]string, []string, error) {
		args := rbeeArgs(spec, port)
		return append(args, "--health-path", "/v1/ready"), []string{"TW_VAR=a b"}, nil
	}
	hd := h.mustStart(t, spec)
	if err := hd.WaitReady(t.Context(), readyTimeout); err != nil {
		t.Fatalf("WaitReady on %s: %v", hd.HealthURL(), err)
	}
	later, err := New(Config{HiveID: h.hive, LogDir: h.logDir, PortMin: 9300, PortMax: 9399})
	if err != nil {
		t.Fatal(err)
	}
	w, err := later.Find(t.Context(), "typed")
	if err != nil {
		t.Fatal(err)
	}
	if w.WorkerType != "tw" || w.HealthPath != "/v1/ready" || w.ReadyStatus != 200 || !strings.HasSuffix(w.HealthURL(), "/v1/ready") {
		t.Errorf("found %+v (health %s), want type tw and health path /v1/ready", w, w.HealthURL())
	}
	if _, err := h.Stop(t.Context(), "typed", 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
}

// With a stall timeout, a worker that neither logs nor answers a loading
// status fails the wait early; one that keeps logging is waited for past
// the stall timeout, with progress reported as it goes.
func TestHandle_WaitReadyStall(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	const stall = 1500 * time.Millisecond

	stuck := h.mustStart(t, h.spec(t, "stuck", "m@no-health"))
	err := stuck.WaitReadyFor(t.Context(), ReadyWait{Timeout: readyTimeout, StallTimeout: stall})
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "made no progress for 1.5s") {
		t.Errorf("stalled worker: got %v, want ErrNotReady for no progress", err)
	}

	slow := h.mustStart(t, h.spec(t, "slow", "m@no-health,log-every=50ms"))
	// No loading status, no log growth: 503 alone is not progress for a
	// type whose loading_status is empty...
	var mu sync.Mutex
	var lines []string
	// ...but a growing log is: this one logs until the wait is ended by the
	// test's own bound, long past the stall timeout.
	err = slow.WaitReadyFor(t.Context(), ReadyWait{
		Timeout: 3 * stall, StallTimeout: stall, ProgressEvery: 200 * time.Millisecond,
		OnProgress: func(_ time.Duration, line string) { mu.Lock(); lines = append(lines, line); mu.Unlock() },
	})
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "did not answer 200 within") {
		t.Errorf("logging worker: got %v, want the overall timeout, not a stall", err)
	}
	mu.Lock()
	if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-1], "loading: step ") {
		t.Errorf("progress reports %q: want several, the last naming the worker's last log line", lines)
	}
	mu.Unlock()

	// A 503 counts as progress when it is a loading status.
	loading := h.mustStart(t, h.spec(t, "loading", "m@no-health"))
	err = loading.WaitReadyFor(t.Context(), ReadyWait{Timeout: 3 * stall, StallTimeout: stall, LoadingStatus: []int{503}})
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "did not answer 200 within") {
		t.Errorf("worker answering 503 (loading): got %v, want the overall timeout, not a stall", err)
	}
	for _, id := range []string{"stuck", "slow", "loading"} {
		if _, err := h.Stop(t.Context(), id, 5*time.Second, nil); err != nil {
			t.Error(err)
		}
	}
}
