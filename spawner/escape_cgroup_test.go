//go:build unix

package spawner

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

// cgroupHarness is a harness in cgroup mode, or skips the test where
// cgroups cannot be used.
func cgroupHarness(t *testing.T) *harness {
	t.Helper()
	if _, err := probeCgroups(); err != nil {
		t.Skipf("cgroups unusable here: %v", err)
	}
	h := newHarnessWith(t, 9300, 9399, withContainment(ContainmentCgroup))
	h.cfg.LeftoverGrace = time.Second
	return h
}

// outOfCgroup checks that the worker's child really left the worker's cgroup.
func outOfCgroup(t *testing.T, h *harness, hd *Handle, child int) {
	t.Helper()
	p, err := cgroupOfPid(child)
	if err != nil {
		t.Fatal(err)
	}
	if dir := h.cg.dir(h.hive, hd.WorkerID); filepath.Join(h.cg.mount, p) == dir {
		t.Fatalf("child %d is still in the worker's cgroup %s", child, dir)
	}
}

// A child that moves itself out of the worker's cgroup and calls setsid
// keeps the marker: in cgroup mode a delete stops it too, as process-group
// mode does, so it is never listed as the worker afterwards and the id is
// free again.
func TestSpawner_CgroupStopsChildThatLeftItsCgroup(t *testing.T) {
	h := cgroupHarness(t)
	hd := h.startReady(t, "w1", "m@escape-cgroup")
	child := childPid(t, hd)
	outOfCgroup(t, h, hd, child)
	h.mustStop(t, "w1", stopGrace)
	if testenv.Alive(child) {
		t.Errorf("child %d that left the worker's cgroup still running after Stop", child)
	}
	// It had its SIGTERM (the worker exits at once on its own), not only
	// the SIGKILL after the grace.
	if !testLogHas(hd.LogPath, "child: got SIGTERM") {
		t.Errorf("child %d that left the worker's cgroup never logged a SIGTERM", child)
	}
	h.waitExit(t, hd.PID)
	if ws, err := h.List(t.Context()); err != nil || len(ws) != 0 {
		t.Errorf("List after Stop = %+v, %v; want none", ws, err)
	}
	again := h.startReady(t, "w1", "m")
	h.mustStop(t, "w1", stopGrace)
	h.waitExit(t, again.PID)
}

// A worker that exits by itself takes a child that left its cgroup with
// it, and reports it as a leftover, as process-group mode does.
func TestSpawner_CgroupExitStopsChildThatLeftItsCgroup(t *testing.T) {
	h := cgroupHarness(t)
	hd := h.mustStart(t, h.spec(t, "w1", "m@escape-cgroup,crash-after=500ms"))
	child := childPid(t, hd)
	outOfCgroup(t, h, hd, child)
	if e := h.waitExit(t, hd.PID); e.Code != 3 || e.Leftovers != 1 {
		t.Errorf("exit %+v, want code 3 with 1 leftover", e)
	}
	if testenv.Alive(child) {
		t.Errorf("child %d that left the worker's cgroup still running after its worker exited", child)
	}
}
