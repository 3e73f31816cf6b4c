//go:build unix

package spawner

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

func (h *harness) snapshot() []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// waitEvents waits until done holds for the recorded events.
func (h *harness) waitEvents(t *testing.T, what string, done func([]event) bool) []event {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		evs := h.snapshot()
		if done(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; events %v", what, readyTimeout, evs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func describe(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		if e.kind == "start" {
			out[i] = fmt.Sprintf("start#%d:%d", e.w.Restarts, e.w.Port)
		} else {
			out[i] = fmt.Sprintf("exit(code %d, restart %d)", e.exit.Code, e.exit.Restart)
		}
	}
	return out
}

// A failing worker under on-failure is started again, with the same id and
// port, max times; each exit says which restart follows.
func TestStart_RestartOnFailure(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, func(c *Config) { c.RestartBackoff = 20 * time.Millisecond })
	spec := h.spec(t, "flaky", "m@crash-after=100ms")
	spec.Restart = RestartPolicy{OnFailure: true, Max: 2}
	hd := h.mustStart(t, spec)
	evs := h.waitEvents(t, "three starts and exits", func(evs []event) bool { return len(evs) >= 6 })
	port := hd.Port
	want := []string{
		fmt.Sprintf("start#0:%d", port), "exit(code 3, restart 1)",
		fmt.Sprintf("start#1:%d", port), "exit(code 3, restart 2)",
		fmt.Sprintf("start#2:%d", port), "exit(code 3, restart 0)",
	}
	if got := describe(evs); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	// No fourth start comes: Max was reached.
	time.Sleep(300 * time.Millisecond)
	if n := len(h.snapshot()); n != 6 {
		t.Errorf("got %d events after the last restart, want 6", n)
	}
	if evs[2].w.Restart != spec.Restart || evs[2].w.WorkerID != "flaky" {
		t.Errorf("restarted worker %+v: want the same id and policy", evs[2].w)
	}
}

// A delete during the backoff cancels the restart; a worker that exits
// with status 0 or is stopped is not restarted.
func TestStart_RestartCancelled(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, func(c *Config) { c.RestartBackoff = 50 * time.Second })
	spec := h.spec(t, "flaky", "m@crash")
	spec.Restart = RestartPolicy{OnFailure: true, Max: 3}
	h.mustStart(t, spec)
	evs := h.waitEvents(t, "exit", func(evs []event) bool { return len(evs) >= 2 })
	if evs[1].exit.Restart != 1 || evs[1].exit.RestartIn != 50*time.Second {
		t.Fatalf("exit %+v: want restart 1 after the backoff; events %v", evs[1].exit, describe(evs))
	}
	if !h.CancelRestart("flaky") {
		t.Fatal("CancelRestart: no pending restart")
	}
	if h.CancelRestart("flaky") {
		t.Error("a second CancelRestart found a restart")
	}

	stopped := h.spec(t, "stopped", "m")
	stopped.Restart = RestartPolicy{OnFailure: true, Max: 3}
	hd := h.mustStart(t, stopped)
	if err := hd.WaitReady(t.Context(), readyTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Stop(t.Context(), "stopped", 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if e := hd.Exit(); e.Restart != 0 || h.CancelRestart("stopped") {
		t.Errorf("stopped worker: exit %+v, want no restart", e)
	}
	if !testenv.WaitGone(hd.PID, 5*time.Second) {
		t.Error("stopped worker still there")
	}
}

// A worker that dies while its spawn waits for it (inside the alive
// window, or before it is ready) makes the spawn fail, and is then not
// restarted: a caller told "it exited" is never left with a worker that
// comes back. One that dies after its wait succeeded is restarted.
func TestStart_NoRestartWhenTheSpawnFailed(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, func(c *Config) { c.RestartBackoff = 50 * time.Second })
	for _, c := range []struct {
		name string
		wait func(*Handle) error
	}{
		{"alive", func(hd *Handle) error { return hd.WaitAlive(t.Context(), readyTimeout) }},
		{"ready", func(hd *Handle) error { return hd.WaitReady(t.Context(), readyTimeout) }},
	} {
		spec := h.spec(t, "dies-"+c.name, "m@no-health,crash-after=100ms")
		spec.Restart = RestartPolicy{OnFailure: true, Max: 2}
		hd := h.mustStart(t, spec)
		var exited *ExitedError
		if err := c.wait(hd); !errors.As(err, &exited) {
			t.Fatalf("wait %s: %v, want an ExitedError", c.name, err)
		}
		if e := hd.Exit(); e.Restart != 0 || !e.SpawnFailed || e.Code != 3 {
			t.Errorf("wait %s: exit %+v, want code 3, SpawnFailed and no restart", c.name, e)
		}
		if h.CancelRestart(spec.WorkerID) {
			t.Errorf("wait %s: a restart is pending for a worker whose spawn failed", c.name)
		}
	}

	spec := h.spec(t, "dies-later", "m@crash-after=300ms")
	spec.Restart = RestartPolicy{OnFailure: true, Max: 2}
	hd := h.mustStart(t, spec)
	if err := hd.WaitAlive(t.Context(), time.Millisecond); err != nil {
		t.Fatalf("WaitAlive: %v", err)
	}
	if e := hd.Exit(); e.Restart != 1 || e.SpawnFailed {
		t.Errorf("exit after the wait: %+v, want restart 1", e)
	}
	if !h.CancelRestart("dies-later") {
		t.Error("no restart pending for a worker whose spawn succeeded")
	}
}
