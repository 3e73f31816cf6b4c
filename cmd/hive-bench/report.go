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

// report prints one agent build's figures as they are measured and keeps
// each figure's median (and ratio to its floor) per run for the summary.
type report struct {
	names  []string             // in the order first seen
	values map[string][]float64 // per name, one value per run
}

func newReport() *report { return &report{values: map[string][]float64{}} }

func printHeader(bins []string) {
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("hive-bench on %s: %d cores (%s), kernel %s, %s, load %s\n", host, runtime.NumCPU(), cpuModel(), kernel(),
		runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "))
	for i, b := range bins {
		fmt.Printf("agent %c: %s\n", 'A'+i, b)
	}
}

func (r *report) columns() {
	fmt.Printf("%-52s %10s %10s %10s %10s\n", "operation", "median", "p99", "x floor", "p99 x")
}

func (r *report) line(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// value keeps one run's figure for the summary.
func (r *report) value(name string, v float64) {
	if _, ok := r.values[name]; !ok {
		r.names = append(r.names, name)
	}
	r.values[name] = append(r.values[name], v)
}

// row prints one figure; floor, when set, is what the figure is compared with.
func (r *report) row(name string, s, floor samples) {
	ratio, ratio99 := "", ""
	r.value(name+", median ms", float64(s.median())/1e6)
	if floor != nil {
		x := float64(s.median()) / float64(floor.median())
		ratio = fmt.Sprintf("%.2f", x)
		ratio99 = fmt.Sprintf("%.2f", float64(s.p99())/float64(floor.p99()))
		r.value(name+", x floor", x)
	}
	fmt.Printf("%-52s %10s %10s %10s %10s\n", name, us(s.median()), us(s.p99()), ratio, ratio99)
}

// summary prints, per figure and build, the median of the runs' values
// and their lowest and highest.
func summary(bins []string, reports []*report) {
	fmt.Printf("%-64s", "figure")
	for i := range bins {
		fmt.Printf(" %24s", fmt.Sprintf("agent %c", 'A'+i))
	}
	fmt.Println()
	for _, name := range reports[0].names {
		fmt.Printf("%-64s", name)
		for _, r := range reports {
			v := append([]float64(nil), r.values[name]...)
			if len(v) == 0 {
				fmt.Printf(" %24s", "-")
				continue
			}
			sort.Float64s(v)
			fmt.Printf(" %24s", fmt.Sprintf("%.3g [%.3g-%.3g]", v[len(v)/2], v[0], v[len(v)-1]))
		}
		fmt.Println()
	}
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
