//go:build unix

package spawner

import (
	"errors"
	"testing"
)

// While Starts queued in one Spawner share a hold of the start lock and
// its scan, a worker that ended meanwhile must not block its id, and one
// that still runs must.
func TestSpawner_StartBatchSeesEndsAndStarts(t *testing.T) {
	h := newHarness(t, 10480, 10499)
	h.mustStart(t, h.spec(t, "a", "m"))
	// A Start pretends to wait, so every Start keeps the lock and the scan.
	h.batch.waiting.Add(1)
	t.Cleanup(func() { // on failure: the lock must not outlive the test
		if h.batch.waiting.Load() > 0 {
			h.batch.waiting.Add(-1)
			h.startMu.Lock()
			if h.batch.unlock != nil {
				h.batch.unlock()
				h.batch.unlock = nil
			}
			h.startMu.Unlock()
		}
	})
	b := h.mustStart(t, h.spec(t, "b", "m"))
	if h.batch.unlock == nil || h.batch.starts != 1 {
		t.Fatalf("batch after b: held=%v starts=%d, want held, 1", h.batch.unlock != nil, h.batch.starts)
	}
	h.mustStop(t, "a", stopGrace)
	// The batch's scan still lists a; it is checked again and found gone.
	a2 := h.mustStart(t, h.spec(t, "a", "m"))
	if h.batch.starts != 2 {
		t.Fatalf("second Start did not share the batch: starts=%d", h.batch.starts)
	}
	_, err := h.Start(t.Context(), h.spec(t, "b", "m"))
	var running *RunningError
	if !errors.As(err, &running) || running.Worker.PID != b.PID {
		t.Fatalf("Start of running b in a batch: got %v, want RunningError for pid %d", err, b.PID)
	}
	if a2.Port == b.Port {
		t.Errorf("a and b share port %d", b.Port)
	}
	h.batch.waiting.Add(-1)
	h.mustStart(t, h.spec(t, "last", "m"))
	if h.batch.unlock != nil {
		t.Error("start lock still held after a Start with none waiting")
	}
	for _, id := range []string{"a", "b", "last"} {
		h.mustStop(t, id, stopGrace)
	}
}
