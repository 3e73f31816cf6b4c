//go:build unix

package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// swapPort is the port the swap figure's workers take, one after the
// other: in the agent's range, above what fill uses.
const swapPort = 20990

// readyOverhead measures n spawns with wait: ready of a test worker whose
// health answers 200 after (ready-after): the time from the instant its
// health could first answer 200 (which the worker prints at start) to the
// spawn's reply. quiet workers print nothing when they become ready; the
// others print one line then, as a model server logs its listening line.
func (a *agent) readyOverhead(n int, after time.Duration, quiet bool) (samples, error) {
	model := "m@ready-after=" + after.String()
	if quiet {
		model += ",quiet-ready"
	}
	body := `{"worker_id":"rdy","model_id":"` + model + `","device":"cpu","wait":"ready","wait_timeout_ms":60000}`
	out := make(samples, 0, n)
	for range n {
		if _, err := a.do("spawn", body); err != nil {
			return nil, err
		}
		replied := time.Now()
		readyAt, err := readyFrom(filepath.Join(a.dir, "logs", hive, "rdy.log"))
		if err != nil {
			return nil, err
		}
		out = append(out, replied.Sub(readyAt))
		if _, err := a.do("delete", `{"worker_id":"rdy"}`); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readyFrom reads the "ready from unix ns N" line of a test worker's log.
func readyFrom(log string) (time.Time, error) {
	f, err := os.Open(log)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "testworker: ready from unix ns "); ok {
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("%s: %w", log, err)
			}
			return time.Unix(0, ns), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s: no ready line", log)
}

// swaps measures n model swaps: delete of the worker on swapPort, then
// spawn with wait: ready of another on the same port, until its reply.
func (a *agent) swaps(n int) (samples, error) {
	spawn := func(id string) error {
		_, err := a.do("spawn", `{"worker_id":"`+id+`","model_id":"m","device":"cpu","wait":"ready","port":`+
			strconv.Itoa(swapPort)+`,"wait_timeout_ms":30000}`)
		return err
	}
	cur := "swap-a"
	if err := spawn(cur); err != nil {
		return nil, err
	}
	out := make(samples, 0, n)
	for i := range n {
		next := "swap-b"
		if i%2 == 1 {
			next = "swap-a"
		}
		t := time.Now()
		if _, err := a.do("delete", `{"worker_id":"`+cur+`"}`); err != nil {
			return nil, err
		}
		if err := spawn(next); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
		cur = next
	}
	_, err := a.do("delete", `{"worker_id":"`+cur+`"}`)
	return out, err
}

// bareSwaps is the swap's floor without NATS: SIGTERM to the group of a
// worker that handles it and reap, then fork/exec of the next one on the
// same port and the worker's own time until its health answers 200
// (polled every 100 µs).
func bareSwaps(worker string, n int) (samples, error) {
	port := bareBasePort + 500
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/health"
	client := &http.Client{Timeout: time.Second}
	up := func() (*exec.Cmd, error) {
		cmd, err := startBare(worker, port)
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if resp, err := client.Get(url); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				stopBare(cmd)
				return nil, fmt.Errorf("bare worker never answered %s", url)
			}
			time.Sleep(100 * time.Microsecond)
		}
		waitHandler(cmd.Process.Pid)
		return cmd, nil
	}
	cur, err := up()
	if err != nil {
		return nil, err
	}
	out := make(samples, 0, n)
	for range n {
		client.CloseIdleConnections()
		t := time.Now()
		stopBare(cur)
		if cur, err = up(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	stopBare(cur)
	return out, nil
}
