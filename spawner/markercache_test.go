//go:build unix

package spawner

import (
	"os/exec"
	"testing"
	"time"
)

// The marker cache rests on this: an exec keeps the pid and start time but
// moves the environment, so the cache key of the image before the exec is
// not that of the image after it.
func TestMarkerKeyChangesOnExec(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 0.3; exec env HIVE_BENCH_X=1 sleep 5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// Right after an exec the kernel shows no environment address yet
	// (nothing is cached then); the shell's shows within its 0.3 s.
	var before markerKey
	deadline := time.Now().Add(10 * time.Second)
	for before.envStart == 0 {
		st, ok := readStat(cmd.Process.Pid)
		if !ok || time.Now().After(deadline) {
			t.Fatal("no environment address of the shell")
		}
		before = keyOf(cmd.Process.Pid, st)
	}
	for {
		st, ok := readStat(cmd.Process.Pid)
		if !ok {
			t.Fatal("process gone")
		}
		if after := keyOf(cmd.Process.Pid, st); after != before && after.envStart != 0 {
			if after.startTicks != before.startTicks {
				t.Errorf("start time changed across exec: %d -> %d", before.startTicks, after.startTicks)
			}
			if m := readMarker(cmd.Process.Pid); m != nil {
				t.Errorf("unexpected marker %v", m)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("cache key unchanged 10 s after the exec")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A cached marker is returned for its image only.
func TestMarkerCacheByImage(t *testing.T) {
	var c markerCache
	k := markerKey{pid: 7, startTicks: 1, envStart: 100, envEnd: 200}
	c.put(k, marker{envHive: "h", envWorker: "w"})
	if m, ok := c.get(k); !ok || !m.is("h", "w") {
		t.Fatalf("get(k) = %v, %v", m, ok)
	}
	k2 := k
	k2.envStart = 300
	if _, ok := c.get(k2); ok {
		t.Error("marker of another image of pid 7 returned")
	}
	c.put(markerKey{pid: 8}, marker{envHive: "x"})
	if _, ok := c.get(markerKey{pid: 8}); ok {
		t.Error("marker cached without an environment address")
	}
	for i := 0; i < 200; i++ {
		c.put(markerKey{pid: 1000 + i, startTicks: 1, envStart: 1, envEnd: 2}, nil)
	}
	c.prune([]int{7})
	if _, ok := c.get(k); !ok || len(c.m) != 1 {
		t.Errorf("prune kept %d entries, want pid 7 alone", len(c.m))
	}
}
