//go:build unix

package spawner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Containment modes, as Config.Containment and Spawner.Containment name them.
const (
	ContainmentAuto         = "auto"
	ContainmentCgroup       = "cgroup"
	ContainmentProcessGroup = "process-group"
)

// cgroups places each worker in its own cgroup v2 group,
// <base>/hive-<hive>/<worker>, where base is hive-agent/ under the agent's
// own cgroup. A cgroup holds everything the worker starts, also children
// that called setsid and cleared their environment, and cgroup.kill ends
// them all at once. The zero value (base "") is process-group mode.
type cgroups struct {
	mount string // the cgroup2 mount, e.g. /sys/fs/cgroup
	base  string
}

// cgroupMounts are where a cgroup2 tree is found: the unified layout, then
// the hybrid one.
var cgroupMounts = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// probeCgroups returns working cgroups, or why the agent cannot use them.
func probeCgroups() (cgroups, error) {
	mount := ""
	for _, m := range cgroupMounts {
		if isCgroup2(m) {
			mount = m
			break
		}
	}
	if mount == "" {
		return cgroups{}, errors.New("no cgroup2 file system mounted")
	}
	own, err := ownCgroup()
	if err != nil {
		return cgroups{}, err
	}
	c := cgroups{mount: mount, base: filepath.Join(mount, own, "hive-agent")}
	probe := filepath.Join(c.base, "probe-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return cgroups{}, fmt.Errorf("create cgroup: %w", err)
	}
	defer os.Remove(probe)
	for _, f := range []string{"cgroup.kill", "cgroup.events"} {
		if _, err := os.Stat(filepath.Join(probe, f)); err != nil {
			return cgroups{}, fmt.Errorf("cgroup has no %s (Linux 5.14+ needed): %w", f, err)
		}
	}
	if err := syscall.Access(filepath.Join(probe, "cgroup.procs"), 2); err != nil {
		return cgroups{}, fmt.Errorf("cannot move processes into cgroups: %w", err)
	}
	return c, nil
}

// ownCgroup is the agent's own cgroup v2 path, from /proc/self/cgroup.
func ownCgroup() (string, error) { return cgroupOfPid(os.Getpid()) }

func cgroupOfPid(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", fmt.Errorf("read cgroup of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("process %d is in no cgroup v2 group", pid)
}

func (c cgroups) enabled() bool { return c.base != "" }

// dir is the cgroup of worker id worker of hive hive.
func (c cgroups) dir(hive, worker string) string {
	return filepath.Join(c.base, "hive-"+hive, worker)
}

// of returns the cgroup that w's live process is in, when that is a worker
// cgroup of w's id: after an agent restart it may lie under another base.
func (c cgroups) of(w Worker) string {
	if !c.enabled() {
		return ""
	}
	p, err := cgroupOfPid(w.PID)
	if err != nil || filepath.Base(p) != w.WorkerID || filepath.Base(filepath.Dir(p)) != "hive-"+w.HiveID {
		return ""
	}
	return filepath.Join(c.mount, p)
}

// prepare creates the worker's cgroup and opens it for clone3. A cgroup
// left populated by an earlier worker of this id (its leftovers, while no
// agent watched) is emptied first: it is this hive's, and a worker id never
// runs twice.
func (c cgroups) prepare(hive, worker string) (string, int, error) {
	dir := c.dir(hive, worker)
	var err error
	for range 3 { // the hive's cgroup may be removed between the two mkdirs
		if err = os.MkdirAll(dir, 0o755); !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return "", -1, fmt.Errorf("create cgroup: %w", err)
	}
	if cgroupPopulated(dir) {
		cgroupKill(dir)
		waitCgroupEmpty(dir, KillWait)
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", -1, fmt.Errorf("open cgroup: %w", err)
	}
	return dir, fd, nil
}

// runningInItsCgroup finds a live worker of this hive with id workerID in
// the cgroup a new worker of that id would get, which prepare empties. A
// Start whose view of the running workers missed it (the record beside
// the start lock, see reservations.go) so answers that the worker runs,
// rather than killing it and starting a twin. One read of cgroup.events
// when the cgroup is gone or empty, as it is unless such a worker runs or
// left processes behind.
func (s *Spawner) runningInItsCgroup(ctx context.Context, workerID string) (Worker, bool) {
	if !s.cg.enabled() {
		return Worker{}, false
	}
	dir := s.cg.dir(s.cfg.HiveID, workerID)
	if !cgroupPopulated(dir) {
		return Worker{}, false
	}
	in := inspection{keep: func(m marker) bool { return m.is(s.cfg.HiveID, workerID) }}
	for _, pid := range cgroupProcs(dir) {
		if w, ok := s.inspect(ctx, pid, in); ok {
			return w, true
		}
	}
	return Worker{}, false
}

// cgroupPopulated reports whether any live process is in dir or below.
func cgroupPopulated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false // gone
	}
	return !bytes.Contains(b, []byte("populated 0"))
}

// cgroupProcs lists the processes in dir.
func cgroupProcs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupKill SIGKILLs every process in dir, setsid or not, in one step.
func cgroupKill(dir string) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
}

func waitCgroupEmpty(dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for cgroupPopulated(dir) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// cgroupMemory is the memory charged to dir, when its memory controller is on.
func cgroupMemory(dir string) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "memory.current"))
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// removeCgroup removes an empty worker cgroup, and its hive's when that is
// empty too. The kernel refuses (EBUSY) while the last processes are not
// yet reaped by their parent, so it retries in the background for a while;
// a cgroup still populated then stays. A Start creating a worker cgroup in
// the hive's meanwhile retries (see prepare).
func removeCgroup(dir string) {
	if dir == "" {
		return
	}
	try := func() bool {
		err := os.Remove(dir)
		if err == nil {
			os.Remove(filepath.Dir(dir))
		}
		return !errors.Is(err, syscall.EBUSY)
	}
	if try() {
		return
	}
	go func() {
		for wait := time.Millisecond; wait < 2*time.Second; wait *= 2 {
			time.Sleep(wait)
			if try() {
				return
			}
		}
	}()
}
