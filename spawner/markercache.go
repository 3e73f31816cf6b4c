package spawner

import "sync"

// markerKey is what identifies one process image: its pid and start time
// say which process, the place of its environment which exec: a process
// keeps its pid and start time across an exec, but the exec builds a new
// stack (at a new random place, and with another size for another
// environment), so a marker read before the exec is never taken for the
// one after.
type markerKey struct {
	pid                          int
	startTicks, envStart, envEnd uint64
}

// markerCache remembers the marker of every process a scan read, so the
// next scan reads no environment of a process it already knows: the
// environment a process was started with does not change. It is used by
// scans only; the checks right before a signal (verify, escapees) read the
// environment afresh.
type markerCache struct {
	mu sync.Mutex
	m  map[int]cachedMarker
}

type cachedMarker struct {
	key markerKey
	m   marker
}

func keyOf(pid int, st procStat) markerKey {
	return markerKey{pid: pid, startTicks: st.startTicks, envStart: st.envStart, envEnd: st.envEnd}
}

// get returns the cached marker of the process image k, if any.
func (c *markerCache) get(k markerKey) (marker, bool) {
	if k.envStart == 0 || k.envEnd == 0 {
		return nil, false // the kernel hides where the environment is
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k.pid]
	if !ok || e.key != k {
		return nil, false
	}
	return e.m, true
}

// put remembers m for k; a newer image of the pid replaces the older.
func (c *markerCache) put(k markerKey, m marker) {
	if k.envStart == 0 || k.envEnd == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int]cachedMarker{}
	}
	c.m[k.pid] = cachedMarker{key: k, m: m}
}

// prune drops the pids that are not in pids (the process table a full scan
// saw) once the cache has grown past it, so it holds about one entry per
// process that leads its group.
func (c *markerCache) prune(pids []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) <= len(pids)/2+64 {
		return
	}
	live := make(map[int]bool, len(pids))
	for _, pid := range pids {
		live[pid] = true
	}
	for pid := range c.m {
		if !live[pid] {
			delete(c.m, pid)
		}
	}
}
