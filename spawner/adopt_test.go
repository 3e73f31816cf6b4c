//go:build unix

package spawner

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

// A worker started by an earlier run of the agent (here another process,
// which then exits, so the worker is nobody's child here) is adopted: when
// it is killed from outside, OnExit reports it with Adopted set, and what
// it left (a child in its group, a setsid child) is stopped.
func TestSpawner_AdoptSeesExitOfEarlierRunsWorker(t *testing.T) {
	containments(t, func(t *testing.T, mode string) {
		h := newHarnessWith(t, 9300, 9399, withContainment(mode))
		h.cfg.LeftoverGrace = time.Second
		helper, out := startHelper(t, h.hive, h.logDir, mode, 9300, 9399, "m@fork,escape", []string{"old"})
		t.Cleanup(func() { testenv.Stop(h.hive) })
		res := waitHelper(t, helper, out)
		if len(res) != 1 || res[0].status != "ok" {
			t.Fatalf("helper: %+v\n%s", res, out)
		}
		pid := res[0].pid
		if !testenv.WaitMarked(h.hive, 3, readyTimeout) {
			t.Fatalf("marked processes %v, want the worker and its two children", testenv.Marked(h.hive))
		}
		marked := testenv.Marked(h.hive)

		ws, err := h.Adopt(t.Context())
		if err != nil || len(ws) != 1 || ws[0].PID != pid {
			t.Fatalf("Adopt = %+v, %v; want the worker pid %d", ws, err, pid)
		}
		if again, err := h.Adopt(t.Context()); err != nil || len(again) != 0 {
			t.Errorf("second Adopt = %+v, %v; want nothing new", again, err)
		}
		killed := time.Now()
		syscall.Kill(pid, syscall.SIGKILL)
		var e Exit
		deadline := time.Now().Add(readyTimeout)
		for {
			if evs := h.eventsOf(pid); len(evs) == 1 && evs[0].kind == "exit" {
				e = evs[0].exit
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no OnExit for adopted pid %d within %s (events %+v)", pid, readyTimeout, h.eventsOf(pid))
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("OnExit %v after the kill", time.Since(killed))
		if !e.Adopted || e.Code != -1 || e.Signal != "" || e.Leftovers != 2 || e.RanMS <= 0 {
			t.Errorf("exit %+v, want Adopted, code -1, no signal, 2 leftovers, RanMS > 0", e)
		}
		for _, p := range marked {
			if testenv.Alive(p) {
				t.Errorf("pid %d of the adopted worker still running", p)
			}
		}
		if mode == ContainmentCgroup {
			dir := h.cg.dir(h.hive, "old")
			deadline := time.Now().Add(readyTimeout)
			for _, err := os.Stat(dir); err == nil; _, err = os.Stat(dir) {
				if time.Now().After(deadline) {
					t.Fatalf("cgroup %s of the adopted worker not removed", dir)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	})
}
