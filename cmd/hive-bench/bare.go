//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// bareBasePort is where the bare loops' workers listen; the agent's range
// starts elsewhere.
const bareBasePort = 21000

// startBare starts the worker as the agent would, minus the agent: its own
// session and process group, output discarded.
func startBare(worker string, port int) (*exec.Cmd, error) {
	cmd := exec.Command(worker, "--worker-id", "bare", "--model", "m", "--device", "cpu",
		"--port", strconv.Itoa(port), "--queen-url", "http://127.0.0.1:1")
	cmd.Env = append(os.Environ(), "HIVE_BENCH_BARE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, cmd.Start()
}

// stopBare is the delete floor: SIGTERM to the group, then reap.
func stopBare(cmd *exec.Cmd) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	cmd.Wait()
}

// bareForkExec measures n sequential starts (fork/exec returns) and stops.
func bareForkExec(worker string, n int) (start, stop samples, err error) {
	for i := range n {
		t := time.Now()
		cmd, err := startBare(worker, bareBasePort+i%100)
		if err != nil {
			return nil, nil, fmt.Errorf("bare start: %w", err)
		}
		start = append(start, time.Since(t))
		// A worker signalled before it installed its SIGTERM handler dies
		// of the default action, faster than one that handles it: the
		// delete figures are for a worker that handles it, both sides.
		waitHandler(cmd.Process.Pid)
		t = time.Now()
		stopBare(cmd)
		stop = append(stop, time.Since(t))
	}
	return start, stop, nil
}

// bareCycles runs loops parallel start+stop loops for d and returns cycles/s.
func bareCycles(worker string, loops int, d time.Duration) (float64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				cmd, err := startBare(worker, bareBasePort+100+l*20+i%20)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				stopBare(cmd)
				done.Add(1)
			}
		}()
	}
	began := time.Now()
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, fmt.Errorf("bare cycle: %w", err)
	}
	return float64(done.Load()) / time.Since(began).Seconds(), nil
}

// waitHandler waits (untimed, up to 5 s) until pid catches SIGTERM.
func waitHandler(pid int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
				if mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && mask&(1<<(syscall.SIGTERM-1)) != 0 {
					return
				}
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
}
