package spawner

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// startTimeOffsetMS corrects process start times for the kernel's boot
// time being reported in whole seconds (/proc/stat btime): gopsutil adds
// that rounded value to each process's start ticks, so every start time is
// off by the same up-to-a-second. /proc/uptime is exact to 10 ms. The offset
// is computed once per agent run, so start times compared within a run
// (identity checks) always agree.
var startTimeOffsetMS = sync.OnceValue(func() int64 {
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(up))
	if len(f) == 0 {
		return 0
	}
	upSec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	btime := int64(-1)
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			btime, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if btime < 0 {
		return 0
	}
	bootMS := time.Now().UnixMilli() - int64(upSec*1000)
	return bootMS - btime*1000
})
