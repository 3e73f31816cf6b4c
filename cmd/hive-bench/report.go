//go:build unix

package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// samples are latencies of one kind, in the order measured.
type samples []time.Duration

func (s samples) quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := append(samples(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[min(len(c)-1, int(q*float64(len(c))))]
}

func (s samples) median() time.Duration { return s.quantile(0.5) }
func (s samples) p99() time.Duration    { return s.quantile(0.99) }

// sum is the floor of an operation made of two floors: sample i of each
// added, so its median and p99 are those of the combined operation.
func sum(a, b samples) samples {
	n := min(len(a), len(b))
	out := make(samples, n)
	for i := range n {
		out[i] = a[i] + b[i]
	}
	return out
}

// report prints the figures as a table on stdout.
type report struct{}

func (r *report) printHeader() {
	host, _ := os.Hostname()
	fmt.Printf("hive-bench on %s: %d cores (%s), kernel %s, %s\n\n", host, runtime.NumCPU(), cpuModel(), kernel(), runtime.Version())
	fmt.Printf("%-44s %10s %10s %10s %10s\n", "operation", "median", "p99", "x floor", "p99 x")
}

func (r *report) line(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// row prints one figure; floor, when set, is what the figure is compared with.
func (r *report) row(name string, s, floor samples) {
	ratio, ratio99 := "", ""
	if floor != nil {
		ratio = fmt.Sprintf("%.2f", float64(s.median())/float64(floor.median()))
		ratio99 = fmt.Sprintf("%.2f", float64(s.p99())/float64(floor.p99()))
	}
	fmt.Printf("%-44s %10s %10s %10s %10s\n", name, us(s.median()), us(s.p99()), ratio, ratio99)
}

func us(d time.Duration) string {
	if d >= 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
