//go:build unix

package spawner

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

// Read your writes: once Start returned a worker, the very next Find and
// Stop see it, even when the child's /proc/<pid>/environ is not filled in
// yet (it was empty right after Start in 618 of 5,000 starts). Several
// goroutines start and at once find or stop workers, bounded by count and
// by wall time; no call may answer not found and no process may be left.
func TestSpawner_StartThenStopSeesWorker(t *testing.T) {
	const (
		goroutines = 4
		maxCycles  = 3000
		maxWall    = 15 * time.Second
		// minCycles run however long they take (a loaded machine), up to
		// hardWall.
		minCycles = 100
		hardWall  = 2 * time.Minute
	)
	h := newHarness(t, 10200, 10299)
	var (
		cycles, notFound atomic.Int64
		mu               sync.Mutex
		handles          []*Handle
		firstErr         error
	)
	deadline, hard := time.Now().Add(maxWall), time.Now().Add(hardWall)
	more := func() bool {
		now := time.Now()
		return now.Before(hard) && (now.Before(deadline) || cycles.Load() < minCycles)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := 0; more() && cycles.Add(1) <= maxCycles; i++ {
				id := fmt.Sprintf("r%d-%d", g, i)
				hd, err := h.Start(t.Context(), h.spec(t, id, "m"))
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, fmt.Errorf("start %s: %w", id, err))
					mu.Unlock()
					return
				}
				mu.Lock()
				handles = append(handles, hd)
				mu.Unlock()
				if i%2 == 1 {
					if _, err := h.Find(t.Context(), id); errors.Is(err, ErrWorkerNotFound) {
						notFound.Add(1)
					}
				}
				if _, err := h.Stop(t.Context(), id, stopGrace, nil); errors.Is(err, ErrWorkerNotFound) {
					notFound.Add(1)
				} else if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, fmt.Errorf("stop %s: %w", id, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	run := min(cycles.Load(), maxCycles)
	if firstErr != nil {
		t.Error(firstErr)
	}
	leaked := 0
	for _, hd := range handles {
		select {
		case <-hd.Done():
		case <-time.After(readyTimeout):
			leaked++
		}
	}
	if left := testenv.Marked(h.hive); len(left) > 0 || leaked > 0 {
		testenv.Stop(h.hive)
		t.Errorf("%d workers still running after their stop, marked processes %v", leaked, left)
	}
	t.Logf("%d start/stop cycles (half with a find between), %d not found", run, notFound.Load())
	if notFound.Load() != 0 {
		t.Errorf("not found %d times in %d cycles; want 0", notFound.Load(), run)
	}
	if run < minCycles {
		t.Errorf("only %d cycles ran in %s; want at least %d for the test to mean anything", run, hardWall, minCycles)
	}
}
