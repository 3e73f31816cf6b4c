package spawner

import (
	"slices"

	"golang.org/x/sys/windows"
)

// WorkerPIDs lists the live processes of a running worker, for finding
// them among a GPU's compute processes: its main process and every process
// of its job object. (Under WDDM nvidia-smi reports no per-process memory:
// docs/gpus.md.)
func (s *Spawner) WorkerPIDs(w Worker) []int {
	pids := []int{w.PID}
	job, err := openJob(jobName(w.HiveID, w.WorkerID, w.PID))
	if err != nil {
		return pids
	}
	defer windows.CloseHandle(job)
	members, err := jobPids(job)
	if err != nil {
		return pids
	}
	for _, pid := range members {
		if !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
