//go:build unix

package spawner

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

// Without pidfds (kernels before 5.3, seccomp profiles that deny
// pidfd_open) Stop falls back to polling and still stops the whole group.
func TestSpawner_StopWithoutPidfds(t *testing.T) {
	saved := pidfdOpen
	pidfdOpen = func(int) (int, error) { return -1, syscall.ENOSYS }
	t.Cleanup(func() { pidfdOpen = saved })
	h := newHarness(t, 10400, 10419)
	for _, c := range []struct{ model, signal string }{{"m@fork", "SIGTERM"}, {"m@ignore-term,fork-ignore-term", "SIGKILL"}} {
		hd, err := h.Start(t.Context(), h.spec(t, "nopidfd", c.model))
		if err != nil {
			t.Fatal(err)
		}
		if err := hd.WaitAlive(t.Context(), 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// Handlers in place and the child forked (and set up) before the
		// stop: an early SIGTERM would end either by its default action.
		settled(t, hd)
		members := testenv.GroupMembers(hd.PID)
		res, err := h.Stop(t.Context(), "nopidfd", 300*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("%s: Stop: %v", c.model, err)
		}
		if res.Signal != c.signal {
			t.Errorf("%s: signal %q, want %q", c.model, res.Signal, c.signal)
		}
		<-hd.Done()
		for _, pid := range members {
			if testenv.Alive(pid) {
				t.Errorf("%s: pid %d of the group still running", c.model, pid)
			}
		}
	}
}

// A stop interrupted during its grace (the agent is stopping) is finished
// with SIGKILL at once instead of being left half done.
func TestSpawner_StopInterruptedEscalates(t *testing.T) {
	h := newHarness(t, 10420, 10439)
	hd, err := h.Start(t.Context(), h.spec(t, "stubborn", "m@ignore-term"))
	if err != nil {
		t.Fatal(err)
	}
	if err := hd.WaitAlive(t.Context(), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	settled(t, hd)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	res, err := h.Stop(ctx, "stubborn", time.Minute, nil)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if res.Signal != "SIGKILL" || res.StoppedMS >= 60_000 {
		t.Errorf("got %+v, want SIGKILL well before the one-minute grace", res)
	}
	<-hd.Done()
	if testenv.Alive(hd.PID) {
		t.Errorf("pid %d still running", hd.PID)
	}
}

// A worker that exits by itself does not leave its children running unseen:
// the spawner stops what is left of its group, SIGKILL after LeftoverGrace.
func TestSpawner_ExitedWorkerLeavesNoChildren(t *testing.T) {
	for _, c := range []struct{ model string }{{"m@fork,crash-after=1s"}, {"m@fork-ignore-term,crash-after=1s"}} {
		t.Run(c.model, func(t *testing.T) {
			h := newHarness(t, 10440, 10459)
			h.cfg.LeftoverGrace = 200 * time.Millisecond
			hd, err := h.Start(t.Context(), h.spec(t, "parent", c.model))
			if err != nil {
				t.Fatal(err)
			}
			if err := hd.WaitAlive(t.Context(), 100*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			waitLog(t, hd.LogPath, "testworker child pid") // forked, before the crash a second in
			members := testenv.GroupMembers(hd.PID)
			if len(members) != 2 {
				t.Fatalf("group %d: got %v, want the worker and its child", hd.PID, members)
			}
			<-hd.Done()
			if e := hd.Exit(); e.Code != 3 || e.Leftovers != 1 {
				t.Errorf("exit: got %+v, want code 3 and 1 leftover", e)
			}
			for _, pid := range members {
				if testenv.Alive(pid) {
					t.Errorf("pid %d still running after its worker exited", pid)
				}
			}
		})
	}
}

// A worker stopped by Stop reports no leftovers: Stop owns its group.
func TestSpawner_StopIsNotLeftoverCleanup(t *testing.T) {
	h := newHarness(t, 10460, 10479)
	hd, err := h.Start(t.Context(), h.spec(t, "w", "m@fork"))
	if err != nil {
		t.Fatal(err)
	}
	if err := hd.WaitAlive(t.Context(), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Stop(t.Context(), "w", 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	<-hd.Done()
	if e := hd.Exit(); e.Leftovers != 0 {
		t.Errorf("exit after Stop: got %+v, want no leftovers", e)
	}
}

// settled waits until hd's worker has its signal handlers in place (it
// listens) and, when it forks, its child has too.
func settled(t *testing.T, hd *Handle) {
	t.Helper()
	log := waitLog(t, hd.LogPath, "testworker: listening on")
	if strings.Contains(log, "testworker: child pid") {
		waitLog(t, hd.LogPath, "testworker child pid")
	}
}
