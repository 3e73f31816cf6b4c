package spawner

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// procStat is what the spawner needs from /proc/<pid>/stat.
type procStat struct {
	ppid, pgid int
	zombie     bool
	// startTicks is the process's start in clock ticks after boot.
	startTicks uint64
	// envStart and envEnd are where its environment lies in its memory;
	// an exec sets them anew (0 where the kernel hides them).
	envStart, envEnd uint64
}

// readStat reads /proc/<pid>/stat directly: it runs for every process of
// the table while a stop waits, where gopsutil's reads cost too much.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// The command name is in parentheses and may hold anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := statFields(b[i+1:]) // state ppid pgrp ... (field 3 on)
	if f[19] == nil {
		return procStat{}, false
	}
	st := procStat{ppid: atoi(f[1]), pgid: atoi(f[2]), zombie: len(f[0]) > 0 && (f[0][0] == 'Z' || f[0][0] == 'X')}
	st.startTicks = uint64(atoi(f[19]))                               // field 22
	st.envStart, st.envEnd = uint64(atoi(f[47])), uint64(atoi(f[48])) // fields 50, 51
	return st, true
}

// statFields splits the stat line after the command name up to its 51st
// field without allocating: readStat runs for every process of a scan.
func statFields(b []byte) (f [49][]byte) {
	n := 0
	for n < len(f) {
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
		if len(b) == 0 {
			break
		}
		end := bytes.IndexByte(b, ' ')
		if end < 0 {
			end = len(b)
		}
		f[n], b = b[:end], b[end:]
		n++
	}
	return f
}

func atoi(b []byte) int {
	n := 0
	for _, c := range bytes.TrimSpace(b) {
		if c < '0' || c > '9' {
			return n
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// readEnviron returns pid's environment as the kernel shows it: NUL
// separated, empty right after an exec.
func readEnviron(pid int) ([]byte, error) {
	return os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
}

// sameUser reports whether pid runs as uid. /proc/<pid> belongs to the
// process's effective user (root for a process that made itself
// undumpable, which then never matches an unprivileged agent).
func sameUser(pid, uid int) bool {
	fi, err := os.Stat("/proc/" + strconv.Itoa(pid))
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}

// allPids lists the numeric entries of /proc.
func allPids() ([]int, error) {
	f, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
