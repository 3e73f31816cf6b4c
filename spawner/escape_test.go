//go:build unix

package spawner

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

var childPidRe = regexp.MustCompile(`testworker child pid (\d+)`)

// childPid waits for the worker's child to report itself in the log.
func childPid(t *testing.T, hd *Handle) int {
	t.Helper()
	m := childPidRe.FindStringSubmatch(waitLog(t, hd.LogPath, "testworker child pid"))
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// containments runs f in each containment mode this machine offers.
func containments(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range []string{ContainmentProcessGroup, ContainmentCgroup} {
		t.Run(mode, func(t *testing.T) {
			if mode == ContainmentCgroup {
				if _, err := probeCgroups(); err != nil {
					t.Skipf("cgroups unusable here: %v", err)
				}
			}
			f(t, mode)
		})
	}
}

func withContainment(mode string) func(*Config) {
	return func(c *Config) { c.Containment = mode }
}

// A child that calls setsid leaves the worker's process group but keeps
// its marker. It is never listed as the worker, a delete stops it too,
// and the worker id is free again afterwards.
func TestSpawner_SetsidChildIsStoppedWithItsWorker(t *testing.T) {
	containments(t, func(t *testing.T, mode string) {
		h := newHarnessWith(t, 9300, 9399, withContainment(mode))
		hd := h.startReady(t, "w1", "m@escape")
		child := childPid(t, hd)
		if g, _ := syscall.Getpgid(child); g != child {
			t.Fatalf("child %d has pgid %d, want its own group", child, g)
		}
		ws, err := h.List(t.Context())
		if err != nil || len(ws) != 1 || ws[0].PID != hd.PID {
			t.Errorf("List = %+v, %v; want only the worker pid %d", ws, err, hd.PID)
		}
		if w, err := h.Find(t.Context(), "w1"); err != nil || w.PID != hd.PID {
			t.Errorf("Find = pid %d, %v; want %d", w.PID, err, hd.PID)
		}
		h.mustStop(t, "w1", stopGrace)
		if left := testenv.Marked(h.hive); len(left) != 0 {
			t.Errorf("processes carrying the marker after Stop: %v (setsid child %d)", left, child)
		}
		h.waitExit(t, hd.PID)
		again := h.startReady(t, "w1", "m")
		h.mustStop(t, "w1", stopGrace)
		h.waitExit(t, again.PID)
	})
}

// A worker that exits by itself takes its setsid child with it.
func TestSpawner_ExitedWorkerStopsSetsidChild(t *testing.T) {
	containments(t, func(t *testing.T, mode string) {
		h := newHarnessWith(t, 9300, 9399, withContainment(mode))
		h.cfg.LeftoverGrace = time.Second
		hd := h.mustStart(t, h.spec(t, "w1", "m@escape,crash-after=500ms"))
		child := childPid(t, hd)
		if e := h.waitExit(t, hd.PID); e.Code != 3 || e.Leftovers != 1 {
			t.Errorf("exit %+v, want code 3 with 1 leftover", e)
		}
		if testenv.Alive(child) {
			t.Errorf("setsid child %d still running after its worker exited", child)
		}
	})
}

// Only a cgroup holds a child that called setsid and dropped its
// environment (so its marker): in cgroup mode a delete stops it too.
func TestSpawner_CgroupStopsUnmarkedEscapee(t *testing.T) {
	if _, err := probeCgroups(); err != nil {
		t.Skipf("cgroups unusable here: %v", err)
	}
	h := newHarnessWith(t, 9300, 9399, withContainment(ContainmentCgroup))
	if got := h.Containment(); got != ContainmentCgroup {
		t.Fatalf("Containment() = %q, want cgroup", got)
	}
	hd := h.startReady(t, "w1", "m@escape-clean")
	child := childPid(t, hd)
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	dir := h.cg.dir(h.hive, "w1")
	if got := cgroupProcs(dir); len(got) != 2 {
		t.Errorf("cgroup %s holds %v, want the worker and its child", dir, got)
	}
	h.mustStop(t, "w1", stopGrace)
	if testenv.Alive(child) {
		t.Errorf("unmarked setsid child %d still running after Stop", child)
	}
	h.waitExit(t, hd.PID)
	if _, err := syscall.Open(dir, syscall.O_RDONLY, 0); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("cgroup %s still there after Stop (open: %v)", dir, err)
	}
}

// Forcing process-group mode works anywhere; forcing cgroup mode fails
// New where cgroups cannot be used.
func TestSpawner_Containment(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, withContainment(ContainmentProcessGroup))
	if got := h.Containment(); got != ContainmentProcessGroup {
		t.Errorf("Containment() = %q, want process-group", got)
	}
	hd := h.startReady(t, "w1", "m")
	if p, err := cgroupOfPid(hd.PID); err == nil && p != mustOwnCgroup(t) {
		t.Errorf("process-group mode: worker in cgroup %s, want the agent's", p)
	}
	h.mustStop(t, "w1", stopGrace)
	h.waitExit(t, hd.PID)

	saved := cgroupMounts
	cgroupMounts = []string{t.TempDir()}
	t.Cleanup(func() { cgroupMounts = saved })
	_, err := New(Config{HiveID: "h", LogDir: t.TempDir(), Containment: ContainmentCgroup})
	if err == nil {
		t.Error("New with containment cgroup and no cgroup2 mount: got nil error")
	}
	s, err := New(Config{HiveID: "h", LogDir: t.TempDir()})
	if err != nil || s.Containment() != ContainmentProcessGroup {
		t.Errorf("New with auto and no cgroup2 mount: %v, %v; want process-group", s, err)
	}
	if _, err := New(Config{HiveID: "h", LogDir: t.TempDir(), Containment: "jail"}); err == nil {
		t.Error(`New with containment "jail": got nil error`)
	}
}

func mustOwnCgroup(t *testing.T) string {
	t.Helper()
	p, err := ownCgroup()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// onSignal is called right before each signal, so a caller can announce
// the stop (a drain event) before the worker sees anything.
func TestSpawner_StopAnnouncesBeforeSignal(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	hd := h.startReady(t, "w1", "m@ignore-term")
	var calls []string
	var sawTerm bool
	_, err := h.Stop(t.Context(), "w1", 300*time.Millisecond, func(sig string, w Worker) {
		calls = append(calls, sig)
		if sig == "SIGTERM" {
			// The worker logs the SIGTERM it ignores; give it time to show
			// one that was already sent.
			deadline := time.Now().Add(300 * time.Millisecond)
			for time.Now().Before(deadline) && !sawTerm {
				sawTerm = testLogHas(hd.LogPath, "ignored SIGTERM")
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(calls) != "[SIGTERM SIGKILL]" {
		t.Errorf("onSignal calls %v, want [SIGTERM SIGKILL]", calls)
	}
	if sawTerm {
		t.Error("the worker had its SIGTERM when onSignal was called; want onSignal first")
	}
	if !testLogHas(hd.LogPath, "ignored SIGTERM") {
		t.Error("the worker never logged the SIGTERM: the test cannot tell the order")
	}
	h.waitExit(t, hd.PID)
}

func testLogHas(path, want string) bool {
	b, _ := os.ReadFile(path)
	return strings.Contains(string(b), want)
}

// A worker started again right after a delete is a new worker, never the
// old one's leftover: the old one's exit handling must not stop it.
func TestSpawner_RestartAfterStopSurvives(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	for i := range 10 {
		first := h.mustStart(t, h.spec(t, "again", "m@escape"))
		h.mustStop(t, "again", stopGrace)
		second := h.mustStart(t, h.spec(t, "again", "m"))
		if err := second.WaitAlive(t.Context(), 300*time.Millisecond); err != nil {
			t.Fatalf("round %d: the new worker died: %v", i, err)
		}
		<-first.Done()
		h.mustStop(t, "again", stopGrace)
		<-second.Done()
	}
}
