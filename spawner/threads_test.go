//go:build unix

package spawner

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"
)

// threadCount is the number of OS threads of this process.
func threadCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Threads:")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// Watching workers costs no OS thread each: with 100 workers running the
// agent process stays far below 100 threads (a cmd.Wait per worker would
// block one thread each).
func TestSpawner_WatchingCostsNoThreadPerWorker(t *testing.T) {
	const workers, maxThreads = 100, 40
	h := newHarness(t, 10000, 10199)
	before := threadCount(t)
	var handles []*Handle
	t.Cleanup(func() {
		for _, hd := range handles {
			h.Stop(t.Context(), hd.WorkerID, stopGrace, nil)
			<-hd.Done()
		}
	})
	for i := range workers {
		handles = append(handles, h.mustStart(t, h.spec(t, fmt.Sprintf("th%03d", i), "m")))
	}
	// Let every worker settle so that each one is being waited on.
	if err := handles[len(handles)-1].WaitReady(t.Context(), readyTimeout); err != nil {
		t.Fatal(err)
	}
	got := threadCount(t)
	t.Logf("threads: %d before, %d with %d workers", before, got, workers)
	if got >= maxThreads {
		t.Errorf("%d threads with %d workers; want fewer than %d", got, workers, maxThreads)
	}
}
