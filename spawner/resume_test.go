//go:build unix

package spawner

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// next returns a harness for a second agent of h's hive, sharing its log
// (and so its restart records) directory, as an agent started after h's
// would be.
func (h *harness) next(t *testing.T, tweak func(*Config)) *harness {
	t.Helper()
	n := &harness{hive: h.hive, logDir: h.logDir}
	cfg := h.cfg
	cfg.OnStart = func(w Worker) { n.record(event{kind: "start", w: w}) }
	cfg.OnExit = func(w Worker, e Exit) { n.record(event{kind: "exit", w: w, exit: e}) }
	cfg.OnPendingRestart = func(p PendingRestart) { n.record(event{kind: "pending", w: p.Worker, pending: p}) }
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Spawner = s
	t.Cleanup(s.Close)
	return n
}

func (h *harness) record(e event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

// failWhileClosed starts a worker under on-failure, closes h (the agent
// stops) and kills the worker from outside, so its backoff begins with no
// agent to honour it; it returns the worker and its exit.
func failWhileClosed(t *testing.T, h *harness, id string) (*Handle, Exit) {
	t.Helper()
	spec := h.spec(t, id, "m")
	spec.Restart = RestartPolicy{OnFailure: true, Max: 2}
	// A port of its own, not the range's lowest free one, which spawners
	// of other tests may take while the worker waits for its restart.
	spec.Port = ownPort(t)
	hd := h.mustStart(t, spec)
	if err := hd.WaitReady(t.Context(), readyTimeout); err != nil {
		t.Fatal(err)
	}
	h.Close()
	syscall.Kill(hd.PID, syscall.SIGKILL)
	e := h.waitExit(t, hd.PID)
	if e.Restart != 1 || e.RestartIn != h.cfg.RestartBackoff {
		t.Fatalf("exit %+v: want restart 1 announced after %s", e, h.cfg.RestartBackoff)
	}
	if _, err := os.Stat(h.recordPath(id)); err != nil {
		t.Fatalf("no restart record: %v", err)
	}
	return hd, e
}

// A worker whose backoff began while its agent was stopping is restarted
// by the next agent once the backoff ends: same id, port and model, the
// restart counted; the closed agent starts nothing.
func TestSpawner_PendingRestartSurvivesTheAgent(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, func(c *Config) { c.RestartBackoff = 100 * time.Millisecond })
	hd, _ := failWhileClosed(t, h, "w1")
	n := h.next(t, nil)
	if _, err := n.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := n.waitEvents(t, "the restart", func(evs []event) bool { return len(evs) >= 2 })
	p, st := evs[0], evs[1]
	if p.kind != "pending" || p.pending.Abandoned != nil || p.w.Restarts != 1 || p.w.Port != hd.Port {
		t.Errorf("first event %+v: want the pending restart 1 resumed on port %d", p, hd.Port)
	}
	if st.kind != "start" || st.w.WorkerID != "w1" || st.w.Port != hd.Port || st.w.ModelID != "m" || st.w.Restarts != 1 || st.w.Restart.Max != 2 {
		t.Errorf("second event %+v: want w1 restarted (restart 1 of 2) on port %d", st, hd.Port)
	}
	if evs := h.snapshot(); len(evs) != 2 {
		t.Errorf("the closed agent recorded %v, want only the first start and exit", describe(evs))
	}
	// The record goes once the start has settled, just after OnStart.
	deadline := time.Now().Add(readyTimeout)
	for {
		_, err := os.Stat(n.recordPath("w1"))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("restart record still there %s after the restart: %v", readyTimeout, err)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if again, _ := n.Adopt(t.Context()); len(again) != 0 {
		t.Errorf("a second Adopt took on %v", again)
	}
	n.mustStop(t, "w1", stopGrace)
	n.waitExit(t, st.w.PID)
}

// A delete cancels a restart that an earlier agent recorded, whether the
// new agent has taken it on (Adopt) or not yet.
func TestSpawner_DeleteCancelsARecordedRestart(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, func(c *Config) { c.RestartBackoff = 50 * time.Second })
	failWhileClosed(t, h, "before")
	failWhileClosed(t, h, "after")
	n := h.next(t, nil)
	if !n.CancelRestart("before") {
		t.Error("CancelRestart before Adopt: found no restart")
	}
	if _, err := n.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := n.snapshot()
	if len(evs) != 1 || evs[0].kind != "pending" || evs[0].w.WorkerID != "after" {
		t.Fatalf("events after Adopt %+v: want only the restart of after resumed", evs)
	}
	if !n.CancelRestart("after") {
		t.Error("CancelRestart after Adopt: found no restart")
	}
	if n.CancelRestart("after") || n.CancelRestart("before") {
		t.Error("a second CancelRestart found a restart")
	}
	for _, id := range []string{"before", "after"} {
		if _, err := os.Stat(n.recordPath(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("record of %s still there after the delete: %v", id, err)
		}
	}
}

// A record that cannot be used is abandoned, said so, and removed.
func TestSpawner_UnreadableRestartRecordIsAbandoned(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, nil)
	os.MkdirAll(h.restartDir(), 0o700)
	if err := os.WriteFile(h.recordPath("broken"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := h.next(t, nil)
	if _, err := n.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := n.snapshot()
	if len(evs) != 1 || evs[0].kind != "pending" || evs[0].w.WorkerID != "broken" || evs[0].pending.Abandoned == nil {
		t.Fatalf("events %+v: want the restart of broken abandoned", evs)
	}
	if _, err := os.Stat(n.recordPath("broken")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("abandoned record still there: %v", err)
	}
}

// Close during a running backoff stops its timer and keeps its record: the
// next agent takes the restart on, due when the first one said.
func TestSpawner_CloseDuringBackoffKeepsTheRestart(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, func(c *Config) { c.RestartBackoff = 50 * time.Second })
	spec := h.spec(t, "w1", "m@crash")
	spec.Restart = RestartPolicy{OnFailure: true, Max: 1}
	hd := h.mustStart(t, spec)
	e := h.waitExit(t, hd.PID)
	if e.Restart != 1 {
		t.Fatalf("exit %+v: want restart 1", e)
	}
	h.Close()
	n := h.next(t, nil)
	if _, err := n.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := n.snapshot()
	if len(evs) != 1 || evs[0].kind != "pending" || evs[0].pending.Abandoned != nil || evs[0].w.Restarts != 1 ||
		time.Until(evs[0].pending.Due) <= 0 {
		t.Fatalf("events %+v: want restart 1 of w1 resumed, due later", evs)
	}
	if !n.CancelRestart("w1") {
		t.Error("CancelRestart: no restart")
	}
}

// ownPort is a port free now, outside the spawners' ranges.
func ownPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
