//go:build unix

package spawner

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

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
// A process whose session leader is outside this pid namespace is never
// one of the worker's either.
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
		if s == 0 {
			// Its session's leader is outside this pid namespace (getsid
			// answers 0 then; in a container, most processes): never a
			// descendant of the worker, whose session and every session a
			// descendant starts are led by processes in this namespace.
			return false
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
