package spawner

import (
	"golang.org/x/sys/unix"
)

// procStat is what the spawner needs to know of a process, here from its
// kinfo_proc (sysctl kern.proc.pid): macOS has no /proc.
type procStat struct {
	ppid, pgid int
	zombie     bool
	// startTicks is the process's start in microseconds since the epoch.
	startTicks uint64
	// envStart and envEnd stay 0: macOS does not say where a process's
	// environment lies, so scans read it every time (see markerCache).
	envStart, envEnd uint64
	uid              int
}

// sZomb is p_stat of a process that exited and waits for its parent.
const sZomb = 5

func statOf(k *unix.KinfoProc) procStat {
	return procStat{
		ppid:       int(k.Eproc.Ppid),
		pgid:       int(k.Eproc.Pgid),
		zombie:     k.Proc.P_stat == sZomb,
		startTicks: uint64(k.Proc.P_starttime.Sec)*1e6 + uint64(k.Proc.P_starttime.Usec),
		uid:        int(k.Eproc.Ucred.Uid),
	}
}

func readStat(pid int) (procStat, bool) {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || k.Proc.P_pid != int32(pid) {
		return procStat{}, false
	}
	return statOf(k), true
}

// startMS converts a start in microseconds since the epoch to ms.
func startMS(us uint64) int64 { return int64(us / 1000) }

// readEnviron returns pid's environment, NUL separated, from
// kern.procargs2 (see parseProcargs2): readable for the agent's own user's
// processes.
func readEnviron(pid int) ([]byte, error) {
	b, err := unix.SysctlRaw("kern.procargs2", pid)
	if err != nil {
		return nil, err
	}
	_, env, err := parseProcargs2(b)
	if err != nil {
		return nil, err
	}
	return joinNUL(env), nil
}

// sameUser reports whether pid runs with effective user uid.
func sameUser(pid, uid int) bool {
	st, ok := readStat(pid)
	return ok && st.uid == uid
}

// allPids lists every process of the machine.
func allPids() ([]int, error) {
	ks, err := unix.SysctlKinfoProcSlice("kern.proc.all")
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(ks))
	for i := range ks {
		pids = append(pids, int(ks[i].Proc.P_pid))
	}
	return pids, nil
}
