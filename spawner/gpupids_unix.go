//go:build unix

package spawner

import "slices"

// WorkerPIDs lists the live processes of a running worker, for finding
// them among a GPU's compute processes: its main process, the members of
// its process group, and in cgroup mode every process of its cgroup.
// Children that left both (setsid outside cgroup mode) are not searched
// for: that costs a read of every process's environment.
func (s *Spawner) WorkerPIDs(w Worker) []int {
	pids := []int{w.PID}
	if cg := s.cg.of(w); cg != "" {
		for _, pid := range cgroupProcs(cg) {
			if !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	all, err := allPids()
	if err != nil {
		return pids
	}
	for _, pid := range all {
		if st, ok := readStat(pid); ok && !st.zombie && st.pgid == w.PID && !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
