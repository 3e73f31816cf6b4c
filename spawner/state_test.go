//go:build unix

package spawner

import (
	"testing"
	"time"
)

// waitDeparted polls Departed until done holds, failing after readyTimeout.
func (h *harness) waitDeparted(t *testing.T, what string, done func([]Departed) bool) []Departed {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		ds := h.Departed()
		if done(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; departed %+v", what, readyTimeout, ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A failed worker waits in backoff (with its restart time); a cancelled
// restart leaves it exited; an exit older than the TTL is forgotten.
func TestSpawner_DepartedBackoffExitedAndTTL(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, func(c *Config) {
		c.RestartBackoff = time.Hour
		c.ExitedTTL = 200 * time.Millisecond
	})
	spec := h.spec(t, "b", "m@crash")
	spec.Restart = RestartPolicy{OnFailure: true, Max: 1}
	hd := h.mustStart(t, spec)
	<-hd.Done()
	ds := h.waitDeparted(t, "backoff", func(ds []Departed) bool { return len(ds) == 1 && ds[0].State == StateBackoff })
	if d := ds[0]; d.WorkerID != "b" || d.Exit.Code != 3 || d.RestartAt.Sub(d.ExitedAt) != MaxRestartBackoff {
		t.Errorf("backoff entry %+v", d)
	}
	// Backoff is listed however old: its restart is still to come.
	if !h.CancelRestart("b") {
		t.Fatal("no pending restart to cancel")
	}
	ds = h.Departed()
	if len(ds) == 1 && ds[0].State == StateBackoff {
		t.Fatalf("still backoff after the restart was cancelled: %+v", ds)
	}
	h.waitDeparted(t, "forgotten after the TTL", func(ds []Departed) bool { return len(ds) == 0 })
}

// A worker's phase follows its wait: starting from Start, running once
// the wait settled, stopping during Stop.
func TestSpawner_StateFollowsTheWait(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	hd := h.mustStart(t, h.spec(t, "s", "m"))
	if got := h.StateOf(hd.Worker); got != StateStarting {
		t.Errorf("after Start: %s, want starting", got)
	}
	if err := hd.WaitAlive(t.Context(), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := h.StateOf(hd.Worker); got != StateRunning {
		t.Errorf("after the alive wait: %s, want running", got)
	}
	// Its SIGTERM handler is in place once it says it listens: a stop
	// before that ends it by the signal's default action.
	waitLog(t, hd.LogPath, "testworker: listening on")
	h.SetHealth(hd.PID, StateUnhealthy)
	if got := h.StateOf(hd.Worker); got != StateUnhealthy {
		t.Errorf("after a health verdict: %s, want unhealthy", got)
	}
	if _, err := h.Stop(t.Context(), "s", time.Second, func(string, Worker) {
		if got := h.StateOf(hd.Worker); got != StateStopping {
			t.Errorf("during Stop: %s, want stopping", got)
		}
	}); err != nil {
		t.Fatal(err)
	}
	ds := h.Departed()
	if len(ds) != 1 || ds[0].State != StateExited || ds[0].Exit.Signal != "" || ds[0].Exit.Code != 0 {
		t.Errorf("after Stop: departed %+v, want one exited with status 0", ds)
	}
}
