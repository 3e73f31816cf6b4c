//go:build unix

package spawner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
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
	// deferred is a signal sent without a search for escapees (cgroup
	// mode, SIGTERM): the search runs once the cgroup is empty (see gone),
	// and sends it to those it finds.
	deferred syscall.Signal
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
// gone, one search makes sure no escapee started meanwhile, and sends
// the escapees it finds a signal whose search was deferred.
func (m *members) gone(ctx context.Context) bool {
	if m.cgroup != "" && cgroupPopulated(m.cgroup) {
		return false
	}
	if m.count(1) != 0 {
		return false
	}
	if m.live(ctx, 1) == 0 {
		return true
	}
	if sig := m.deferred; sig != 0 {
		m.deferred = 0
		m.signalKnown(sig)
	}
	return false
}

// signal sends sig to every process of the worker: to its group (the
// caller checked that the group has members, which pins its id), to each
// escapee through a pidfd opened before its marker is checked again (and to
// its group when it leads one), and in cgroup mode to every process of the
// cgroup (SIGKILL through cgroup.kill).
//
// In cgroup mode a SIGTERM does not search the process table for
// escapees: a process that moved itself out of the cgroup is rare, and
// the search (a read of nearly every process's stat, 3-4 ms of CPU with
// 125 processes) is made anyway once the cgroup is empty, which then
// sends the SIGTERM to what it finds (gone). One search per stop instead
// of two. The price: an escapee gets its SIGTERM once the worker's cgroup
// is empty rather than with it, and none if the cgroup never empties
// within the grace; SIGKILL searches first, so it reaches every escapee.
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
	if m.cgroup != "" && sig != syscall.SIGKILL {
		m.deferred = sig
	} else {
		m.known, m.deferred = m.escapees(), 0
	}
	note(m.signalKnown(sig))
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

// signalKnown sends sig to the escapees the last search found, each
// checked again through a pidfd first.
func (m *members) signalKnown(sig syscall.Signal) error {
	var first error
	for _, e := range m.known {
		err := m.signalVerified(e.pid, sig, func() bool {
			st, ok := readStat(e.pid)
			return ok && !st.zombie && st.startTicks == e.start &&
				readMarker(e.pid).is(m.w.HiveID, m.w.WorkerID) && sameUser(e.pid, m.euid)
		})
		if err != nil && !errors.Is(err, syscall.ESRCH) && first == nil {
			first = err
		}
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
