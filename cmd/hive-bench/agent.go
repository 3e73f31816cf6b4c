//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// hive is this run's own, so that benches run by others on the machine
// never share worker ids with it.
var hive = "bench-" + strconv.Itoa(os.Getpid())

// agent is the hive-agent binary under test, with its embedded server.
type agent struct {
	cmd      *exec.Cmd
	dir      string // its worker and log directory
	nc, srv  *nats.Conn
	running  []string // worker ids fill started
	commands int64    // commands sent, all kinds
	seq      atomic.Int64
}

func startAgent(bin, dir string) (*agent, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--hive-id", hive, "--worker-dir", dir, "--log-dir", filepath.Join(dir, "logs"),
		"--nats-listen", addr, "--port-range", "20000-20999", "--jetstream", "off", "--log-level", "warn",
		"--max-in-flight", "64", "--jetstream-dir", filepath.Join(dir, "js"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &agent{cmd: cmd, dir: dir}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.nc, err = nats.Connect("nats://"+addr, nats.Timeout(time.Second))
		if err == nil {
			if _, err = a.do("list", `{}`); err == nil {
				break
			}
			a.nc.Close()
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("agent never answered: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a.srv, err = nats.Connect("nats://" + addr); err != nil {
		return nil, err
	}
	if _, err := a.srv.Subscribe("bench.bare", func(m *nats.Msg) { m.Respond([]byte(`{"ok":true}`)) }); err != nil {
		return nil, err
	}
	return a, a.srv.Flush()
}

func (a *agent) stop() {
	a.deleteAll()
	if a.nc != nil {
		a.nc.Close()
	}
	if a.srv != nil {
		a.srv.Close()
	}
	a.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
}

// deleteAll deletes every worker of the hive (workers outlive their
// agent, so a run that failed midway would leave them behind).
func (a *agent) deleteAll() {
	if a.nc == nil {
		return
	}
	res, err := a.do("list", `{}`)
	if err != nil {
		return
	}
	var l struct {
		Workers []struct {
			WorkerID string `json:"worker_id"`
		}
	}
	if json.Unmarshal(res, &l) != nil {
		return
	}
	for _, w := range l.Workers {
		a.do("delete", `{"worker_id":"`+w.WorkerID+`"}`)
	}
}

// do sends one command and fails unless the agent answers ok.
func (a *agent) do(cmd, body string) (json.RawMessage, error) {
	atomic.AddInt64(&a.commands, 1)
	subj, err := subjects.WorkerCommand(hive, cmd)
	if err != nil {
		return nil, err
	}
	m, err := a.nc.Request(subj, []byte(body), 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	var r wire.Reply[json.RawMessage]
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("%s reply: %w: %s", cmd, err, m.Data)
	}
	if !r.OK {
		return nil, fmt.Errorf("%s %s: %s", cmd, body, m.Data)
	}
	return r.Result, nil
}

func spawnBody(id string) string {
	return `{"worker_id":"` + id + `","model_id":"m","device":"cpu","wait":"exec"}`
}

func (a *agent) bareRequests(n int) (samples, error) {
	out := make(samples, 0, n)
	for range n {
		t := time.Now()
		if _, err := a.nc.Request("bench.bare", []byte(`{}`), 5*time.Second); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	return out, nil
}

// spawnDelete measures n sequential spawns and deletes of one worker id.
func (a *agent) spawnDelete(n int) (spawn, del samples, err error) {
	for range n {
		t := time.Now()
		res, err := a.do("spawn", spawnBody("lat"))
		if err != nil {
			return nil, nil, err
		}
		spawn = append(spawn, time.Since(t))
		var w struct{ PID int }
		if err := json.Unmarshal(res, &w); err != nil || w.PID == 0 {
			return nil, nil, fmt.Errorf("spawn result without pid: %s", res)
		}
		waitHandler(w.PID)
		t = time.Now()
		if _, err := a.do("delete", `{"worker_id":"lat"}`); err != nil {
			return nil, nil, err
		}
		del = append(del, time.Since(t))
	}
	return spawn, del, nil
}

// fill spawns or deletes workers until n of fill's run.
func (a *agent) fill(n int) error {
	for len(a.running) < n {
		id := "f" + strconv.Itoa(len(a.running))
		if _, err := a.do("spawn", spawnBody(id)); err != nil {
			return err
		}
		a.running = append(a.running, id)
	}
	for len(a.running) > n {
		id := a.running[len(a.running)-1]
		if _, err := a.do("delete", `{"worker_id":"`+id+`"}`); err != nil {
			return err
		}
		a.running = a.running[:len(a.running)-1]
	}
	return nil
}

func (a *agent) lists(want, n int) (samples, error) {
	out := make(samples, 0, n)
	for range n {
		t := time.Now()
		res, err := a.do("list", `{}`)
		if err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
		var l struct{ Workers []json.RawMessage }
		if err := json.Unmarshal(res, &l); err != nil || len(l.Workers) != want {
			return nil, fmt.Errorf("list: got %d workers (%v), want %d", len(l.Workers), err, want)
		}
	}
	return out, nil
}

// cycles runs n requesters doing spawn+delete on their own worker ids for d.
func (a *agent) cycles(n int, d time.Duration) (float64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "c" + strconv.Itoa(r)
			for time.Now().Before(deadline) {
				if _, err := a.do("spawn", spawnBody(id)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if _, err := a.do("delete", `{"worker_id":"`+id+`"}`); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	began := time.Now()
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(done.Load()) / time.Since(began).Seconds(), nil
}

// topUp sends lists of the (by then empty) hive until total commands, of
// all kinds, were sent.
func (a *agent) topUp(total int64) error {
	for atomic.LoadInt64(&a.commands) < total {
		if _, err := a.do("list", `{}`); err != nil {
			return err
		}
	}
	return nil
}

type usage struct {
	rss, hwm     uint64
	threads, fds int
}

func (a *agent) usage() usage {
	var u usage
	pid := strconv.Itoa(a.cmd.Process.Pid)
	f, err := os.Open("/proc/" + pid + "/status")
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			fs := strings.Fields(v)
			if len(fs) == 0 {
				continue
			}
			n, _ := strconv.ParseUint(fs[0], 10, 64)
			switch k {
			case "VmRSS":
				u.rss = n * 1024
			case "VmHWM":
				u.hwm = n * 1024
			case "Threads":
				u.threads = int(n)
			}
		}
		f.Close()
	}
	if es, err := os.ReadDir("/proc/" + pid + "/fd"); err == nil {
		u.fds = len(es)
	}
	return u
}
