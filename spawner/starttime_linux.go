package spawner

import (
	"sync"

	"github.com/shirou/gopsutil/v4/host"
	"github.com/tklauser/go-sysconf"
)

// startMS converts a start in clock ticks after boot to ms since the
// epoch, with gopsutil's formula (boot time in whole seconds, then
// startTimeOffsetMS), so start times agree with those recorded by earlier
// agent versions. The stat line is read once for every process of a scan;
// gopsutil read and parsed it again for this one field.
func startMS(ticks uint64) int64 {
	return int64(ticks*1000/clockTicks()+bootTimeMS()) + startTimeOffsetMS()
}

var clockTicks = sync.OnceValue(func() uint64 {
	if n, err := sysconf.Sysconf(sysconf.SC_CLK_TCK); err == nil && n > 0 {
		return uint64(n)
	}
	return 100
})

var bootTimeMS = sync.OnceValue(func() uint64 {
	bt, err := host.BootTime()
	if err != nil {
		return 0
	}
	return bt * 1000
})
