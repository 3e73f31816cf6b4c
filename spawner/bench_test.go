//go:build unix

package spawner

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStartStop starts a worker (no alive window) and stops it with
// SIGTERM, reaping it, as a delete right after a spawn does. Compare with
// BenchmarkBareForkExec: the difference is the spawner's own work (process
// table scans, marker, log file, identity checks, group wait).
func BenchmarkStartStop(b *testing.B) {
	for _, mode := range []string{ContainmentProcessGroup, ContainmentCgroup} {
		b.Run(mode, func(b *testing.B) {
			if _, err := probeCgroups(); err != nil && mode == ContainmentCgroup {
				b.Skipf("cgroups unusable here: %v", err)
			}
			benchStartStop(b, mode)
		})
	}
}

func benchStartStop(b *testing.B, mode string) {
	h := newHarnessWith(b, 10300, 10399, withContainment(mode))
	spec := h.spec(b, "bench", "m")
	var startD, stopD time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		hd, err := h.Start(b.Context(), spec)
		if err != nil {
			b.Fatalf("Start: %v", err)
		}
		t1 := time.Now()
		if _, err := h.Stop(b.Context(), spec.WorkerID, 5*time.Second, nil); err != nil {
			b.Fatalf("Stop: %v", err)
		}
		<-hd.Done()
		startD += t1.Sub(t0)
		stopD += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(startD.Microseconds())/float64(n), "start-µs/op")
	b.ReportMetric(float64(stopD.Microseconds())/float64(n), "stop-µs/op")
}

// BenchmarkBareForkExec is the floor for BenchmarkStartStop: the same
// worker binary and argv started in its own session, sent SIGTERM and waited for.
func BenchmarkBareForkExec(b *testing.B) {
	bin := binary(b, "cpu-llm")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	var startD, stopD time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		cmd := exec.Command(bin, "--worker-id", "bench", "--model", "m", "--device", "cpu",
			"--port", port, "--queen-url", testQueenURL)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			b.Fatalf("start: %v", err)
		}
		t1 := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			b.Fatalf("signal: %v", err)
		}
		cmd.Wait()
		startD += t1.Sub(t0)
		stopD += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(startD.Microseconds())/float64(n), "start-µs/op")
	b.ReportMetric(float64(stopD.Microseconds())/float64(n), "stop-µs/op")
}

// BenchmarkList lists a hive with 20 and with 200 workers running. Each
// list reads the whole process table, so the machine's other processes
// count too.
func BenchmarkList(b *testing.B) {
	h := newHarness(b, 10000, 10299)
	var handles []*Handle
	defer func() {
		for _, hd := range handles {
			if _, err := h.Stop(b.Context(), hd.WorkerID, 5*time.Second, nil); err != nil {
				b.Errorf("Stop %s: %v", hd.WorkerID, err)
			}
			<-hd.Done()
		}
	}()
	for _, workers := range []int{20, 200} {
		var started []*Handle
		for len(handles) < workers {
			hd, err := h.Start(b.Context(), h.spec(b, fmt.Sprintf("w%03d", len(handles)), "m"))
			if err != nil {
				b.Fatalf("Start: %v", err)
			}
			handles = append(handles, hd)
			started = append(started, hd)
		}
		// Wait until every new worker is up, so none can vanish mid-benchmark.
		var wg sync.WaitGroup
		for _, hd := range started {
			wg.Go(func() {
				if err := hd.WaitReady(b.Context(), time.Minute); err != nil {
					b.Errorf("WaitReady %s: %v", hd.WorkerID, err)
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			return
		}
		// The floor: read each process's pgid, environment and stat straight
		// from /proc, no parsing beyond finding the marker.
		b.Run(fmt.Sprintf("bare-proc-read/workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				if n := bareProcScan(h.HiveID()); n != workers {
					b.Fatalf("bare scan found %d workers, want %d", n, workers)
				}
			}
		})
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				ws, err := h.List(b.Context())
				if err != nil || len(ws) != workers {
					b.Fatalf("List = %d workers, %v; want %d", len(ws), err, workers)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(workers), "µs/worker")
		})
	}
}

// bareProcScan counts the group leaders whose environment names hive, reading
// /proc directly: the least work a list can do on Linux.
func bareProcScan(hive string) int {
	want := []byte("HIVE_AGENT_HIVE_ID=" + hive + "\x00")
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pid {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		if _, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			n++
		}
	}
	return n
}

// BenchmarkEscapeeSearch is what one search of the process table for a
// worker's marked processes outside its group or cgroup costs (a stop
// does one per signal and one when the worker looks gone): from the
// marker cache where the process image was seen, else with a fresh read
// of each environment.
func BenchmarkEscapeeSearch(b *testing.B) {
	w := Worker{HiveID: "bench", WorkerID: "none", PID: -1}
	for _, c := range []struct {
		name  string
		cache *markerCache
	}{{"fresh", nil}, {"cached", &markerCache{}}} {
		b.Run(c.name, func(b *testing.B) {
			m := &members{w: w, euid: os.Geteuid(), markers: c.cache}
			cpu0 := cpuTime()
			n := 0
			for b.Loop() {
				if got := m.escapees(); len(got) != 0 {
					b.Fatalf("found %v", got)
				}
				n++
			}
			// CPU time, beside the wall time that the load of a shared
			// machine inflates.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/op")
			pids, _ := allPids()
			b.ReportMetric(float64(len(pids)), "processes")
		})
	}
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
