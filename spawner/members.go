package spawner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// members is everything that belongs to one worker: its process group, the
// processes elsewhere that carry its marker (children that called setsid,
// or in cgroup mode moved themselves out of its cgroup) with their own
// groups, and in cgroup mode its cgroup, which also holds escapees that
// cleared their environment.
type members struct {
	w      Worker
	euid   int
	cgroup string // "" in process-group mode
	mount  string // the cgroup2 mount that cgroup is under
	// known are the escapees found by the last search.
	known []escapee
	// other, when set, reports processes that carry the marker but belong
	// to another (newer) worker of the same id.
	other func(pid int, st procStat) bool
	// markers, when set, spares the search the environment reads of
	// process images it has seen (see markerCache); the check right
	// before a signal reads the marker afresh.
	markers *markerCache
}

// escapee is a process carrying the worker's marker outside its group
// (or, in cgroup mode, outside its cgroup).
type escapee struct {
	pid, pgid int
	// start is its start in clock ticks: with pid, which process it is.
	start uint64
}

// escapees returns the live processes of the current user that carry w's
// marker but left its process group, or in cgroup mode its cgroup.
//
// In cgroup mode a child that only calls setsid stays in the worker's
// cgroup, whose cgroup.procs count and signal already cover it (marked or
// not); but a child may also move itself to another cgroup (writing its pid
// to that cgroup's cgroup.procs, which root and a delegated user can do),
// and then only its marker tells that it is the worker's. So the process
// table is searched in both modes; in cgroup mode only when a signal is
// about to be sent, when the worker's exit is handled, and once more when
// its cgroup looks empty (see gone), never on every poll of a wait.
func (m *members) escapees() []escapee {
	pids, err := allPids()
	if err != nil {
		return nil
	}
	self := os.Getpid()
	sessions := m.sessionFilter(pids)
	var out []escapee
	for _, pid := range pids {
		if pid == self || pid == m.w.PID || !sessions(pid) {
			continue
		}
		st, ok := readStat(pid)
		if !ok || st.zombie || !m.marker(pid, st).is(m.w.HiveID, m.w.WorkerID) {
			continue
		}
		if !sameUser(pid, m.euid) || m.inCgroup(pid) {
			continue
		}
		if m.cgroup == "" && st.pgid == m.w.PID {
			continue // the group's signal and count cover it
		}
		if m.other == nil || !m.other(pid, st) {
			out = append(out, escapee{pid: pid, pgid: st.pgid, start: st.startTicks})
		}
	}
	return out
}

// sessionFilter returns which processes of pids can carry the worker's
// marker, from their session ids alone (one system call each, no file
// read): a process with the marker descends from the worker, and a process
// changes its session only by leading a new one, so it is in the worker's
// session, leads a session, or is in a session whose leader carries the
// marker (or is gone, or a zombie: then it cannot be asked). On a machine
// with a hundred processes and a handful of sessions this spares the
// search nine in ten of its reads.
func (m *members) sessionFilter(pids []int) func(pid int) bool {
	sid := make(map[int]int, len(pids))
	for _, pid := range pids {
		if s, err := unix.Getsid(pid); err == nil {
			sid[pid] = s
		}
	}
	marked := map[int]bool{}
	return func(pid int) bool {
		s, ok := sid[pid]
		if !ok {
			return false // gone
		}
		if s == m.w.PID || s == pid {
			return true
		}
		v, known := marked[s]
		if !known {
			st, ok := readStat(s)
			v = sid[s] != s || !ok || st.zombie || m.marker(s, st).is(m.w.HiveID, m.w.WorkerID)
			marked[s] = v
		}
		return v
	}
}

// marker is pid's marker, from the cache when this process image was
// read before.
func (m *members) marker(pid int, st procStat) marker {
	if m.markers == nil {
		return readMarker(pid)
	}
	key := keyOf(pid, st)
	if mk, ok := m.markers.get(key); ok {
		return mk
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil || len(b) == 0 {
		return nil // gone, or right after its exec: not cached
	}
	mk := parseMarker(splitEnv(b))
	m.markers.put(key, mk)
	return mk
}

// inCgroup reports whether pid is in the worker's cgroup (false in
// process-group mode).
func (m *members) inCgroup(pid int) bool {
	if m.cgroup == "" {
		return false
	}
	p, err := cgroupOfPid(pid)
	return err == nil && filepath.Join(m.mount, p) == m.cgroup
}

// live counts the live processes of the worker, at most limit (0: all).
func (m *members) live(ctx context.Context, limit int) int {
	m.known = m.escapees()
	return m.count(limit)
}

// count is live without a new search for escapees: the cgroup's process
// list in cgroup mode, and one pass over the process table's stat files
// for the groups (the worker's in process-group mode, the escapees' in
// both), none when every such group is empty.
func (m *members) count(limit int) int {
	n := 0
	seen := map[int]bool{}
	add := func(pid int) bool {
		if !seen[pid] {
			seen[pid] = true
			n++
		}
		return limit > 0 && n >= limit
	}
	if m.cgroup != "" {
		for _, pid := range cgroupProcs(m.cgroup) {
			if st, ok := readStat(pid); ok && !st.zombie && add(pid) {
				return n
			}
		}
	}
	for _, e := range m.known {
		if st, ok := readStat(e.pid); ok && !st.zombie && st.startTicks == e.start && add(e.pid) {
			return n
		}
	}
	// In cgroup mode every process of the worker's session, so of its
	// group, is its descendant and so in its cgroup unless it moved out
	// (then it carries the marker and is known): no scan of the process
	// table for the worker's group, which a group whose leader is a zombie
	// not yet reaped would otherwise cost on every poll.
	candidates := m.escapeeGroups()
	if m.cgroup == "" {
		candidates = append(candidates, m.w.PID)
	}
	groups := map[int]bool{}
	for _, g := range candidates {
		if err := syscall.Kill(-g, 0); !errors.Is(err, syscall.ESRCH) {
			groups[g] = true
		}
	}
	if len(groups) == 0 {
		return n
	}
	pids, err := allPids()
	if err != nil {
		return max(n, 1) // cannot tell: assume someone is left
	}
	for _, pid := range pids {
		if g, err := syscall.Getpgid(pid); err != nil || !groups[g] {
			continue
		}
		if st, ok := readStat(pid); ok && !st.zombie && groups[st.pgid] && add(pid) {
			return n
		}
	}
	return n
}

func (m *members) escapeeGroups() []int {
	var gs []int
	for _, e := range m.known {
		gs = append(gs, e.pgid)
	}
	return gs
}

// gone reports whether nothing of the worker is left. While something
// known is left, it costs no search for new escapees; once all seems
// gone, one search makes sure no escapee started meanwhile.
func (m *members) gone(ctx context.Context) bool {
	if m.cgroup != "" && cgroupPopulated(m.cgroup) {
		return false
	}
	return m.count(1) == 0 && m.live(ctx, 1) == 0
}

// signal sends sig to every process of the worker: to its group (the
// caller checked that the group has members, which pins its id), to each
// escapee through a pidfd opened before its marker is checked again (and to
// its group when it leads one), and in cgroup mode to every process of the
// cgroup (SIGKILL through cgroup.kill).
func (m *members) signal(sig syscall.Signal) error {
	var first error
	note := func(err error) {
		if err != nil && !errors.Is(err, syscall.ESRCH) && first == nil {
			first = err
		}
	}
	groupSignalled := false
	if err := syscall.Kill(-m.w.PID, 0); err == nil {
		err := syscall.Kill(-m.w.PID, sig)
		note(err)
		groupSignalled = err == nil
	}
	m.known = m.escapees()
	for _, e := range m.known {
		note(m.signalVerified(e.pid, sig, func() bool {
			st, ok := readStat(e.pid)
			return ok && !st.zombie && st.startTicks == e.start &&
				readMarker(e.pid).is(m.w.HiveID, m.w.WorkerID) && sameUser(e.pid, m.euid)
		}))
	}
	if m.cgroup == "" {
		return first
	}
	if sig == syscall.SIGKILL {
		// The cgroup is removed once empty (ENODEV when that happens
		// between open and write): nothing left to kill then.
		if err := cgroupKill(m.cgroup); !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENODEV) {
			note(err)
		}
		return first
	}
	for _, pid := range cgroupProcs(m.cgroup) {
		if st, ok := readStat(pid); ok && st.pgid == m.w.PID && groupSignalled {
			continue // the group's signal reached it
		}
		note(m.signalVerified(pid, sig, func() bool {
			p, err := cgroupOfPid(pid)
			return err == nil && m.cgroup == filepath.Join(m.mount, p)
		}))
	}
	return first
}

// signalVerified opens a handle on pid, then checks that it is still the
// process meant (still), then signals through the handle: its group when
// it leads one, else the process alone.
func (m *members) signalVerified(pid int, sig syscall.Signal, still func() bool) error {
	h, err := openProcess(pid)
	if err != nil {
		return nil // gone
	}
	defer h.Close()
	if !still() {
		return nil
	}
	if st, ok := readStat(pid); ok && st.pgid == pid && pid != m.w.PID {
		// A live leader pins its group id; its group may hold unmarked children.
		return syscall.Kill(-pid, sig)
	}
	return h.Signal(sig)
}

// waitGone waits until nothing of the worker is left or timeout passes,
// polling with a growing interval that starts at 1 ms; leaderExited, when
// not nil, wakes it as soon as the worker's main process exits.
func (m *members) waitGone(ctx context.Context, timeout time.Duration, leaderExited func(time.Duration) bool) bool {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		if m.gone(ctx) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		wait := min(interval, left)
		if leaderExited == nil || leaderExited(0) {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return false
			}
		} else {
			leaderExited(min(left, 250*time.Millisecond))
		}
		interval = min(interval*2, 50*time.Millisecond)
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL, and waits up to
// KillWait. onSignal is told each signal right before it is sent. It
// returns the last signal sent and whether everything went.
func (m *members) stop(ctx context.Context, grace time.Duration, leaderExited func(time.Duration) bool, onSignal func(string)) (string, bool, error) {
	sent := ""
	send := func(sig syscall.Signal) error {
		sent = signalName(sig)
		if onSignal != nil {
			onSignal(sent)
		}
		return m.signal(sig)
	}
	if err := send(syscall.SIGTERM); err != nil {
		return sent, false, err
	}
	// When ctx ends during the grace (the agent is stopping), the stop is
	// finished with SIGKILL at once rather than left half done.
	if m.waitGone(ctx, grace, leaderExited) {
		return sent, true, nil
	}
	ctx = context.WithoutCancel(ctx)
	if err := send(syscall.SIGKILL); err != nil {
		return sent, false, err
	}
	return sent, m.waitGone(ctx, KillWait, leaderExited), nil
}
