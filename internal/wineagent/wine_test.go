//go:build linux

package wineagent

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
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/internal/testenv"
)

// wineReady says why Wine cannot run here, or "" when it can.
func wineReady() string {
	root := os.Getenv("HIVE_WINE_ROOT")
	if root == "" {
		root = "/var/cache/hive-agent-wine"
	}
	if _, err := os.Stat(filepath.Join(root, ".hive-agent-wine-ready")); err != nil {
		return "no Wine chroot at " + root + " (run scripts/wine-setup.sh as root)"
	}
	if os.Geteuid() != 0 {
		return "scripts/wine-exec needs root (a private mount namespace and chroot)"
	}
	return ""
}

// agent is the Windows agent running under Wine; its pid is the Wine
// process's Linux pid (wine-exec execs all the way down).
type agent struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	seen chan struct{}
	want string
}

func buildWindows(t *testing.T, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(testenv.StockGoEnv(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s for Windows: %v\n%s", pkg, err, b)
	}
}

func startAgent(t *testing.T, exe string, args ...string) *agent {
	t.Helper()
	a := &agent{seen: make(chan struct{}), want: "serving worker commands"}
	a.cmd = exec.Command(filepath.Join(testenv.RepoRoot(), "scripts", "wine-exec"), append([]string{exe}, args...)...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	a.cmd.Stdout, a.cmd.Stderr = w, w
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		sc := bufio.NewScanner(r)
		once := sync.Once{}
		for sc.Scan() {
			a.mu.Lock()
			a.out.WriteString(sc.Text() + "\n")
			a.mu.Unlock()
			if strings.Contains(sc.Text(), a.want) {
				once.Do(func() { close(a.seen) })
			}
		}
	}()
	t.Cleanup(func() { a.kill() })
	select {
	case <-a.seen:
	case <-time.After(120 * time.Second): // a first Wine start creates its prefix
		t.Fatalf("the Windows agent did not start serving; its output:\n%s", a.output())
	}
	return a
}

func (a *agent) output() string { a.mu.Lock(); defer a.mu.Unlock(); return a.out.String() }

func (a *agent) kill() {
	if a.cmd.ProcessState == nil {
		a.cmd.Process.Signal(syscall.SIGKILL)
		a.cmd.Wait()
	}
}

type reply struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func call(t *testing.T, nc *nats.Conn, subject, body string) reply {
	t.Helper()
	msg, err := nc.Request(subject, []byte(body), 60*time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", subject, body, err)
	}
	var r reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatalf("%s: reply %s: %v", subject, msg.Data, err)
	}
	return r
}

func mustCall(t *testing.T, nc *nats.Conn, subject, body string, v any) {
	t.Helper()
	r := call(t, nc, subject, body)
	if !r.OK {
		t.Fatalf("%s %s: %+v", subject, body, r.Error)
	}
	if v != nil {
		if err := json.Unmarshal(r.Result, v); err != nil {
			t.Fatalf("%s result %s: %v", subject, r.Result, err)
		}
	}
}

// winePids are the Linux pids of the Wine processes running a worker
// binary of dir: under Wine a Windows process's Linux command line is its
// Windows one (Z:\tmp\...\cpu-llm-worker-rbee ...), and its Linux
// environment does not show the marker of a process started by another
// Windows process, so the binary's unique directory identifies them.
func winePids(dir string) []int {
	unique := filepath.Base(filepath.Dir(dir)) // t.TempDir: /tmp/<TestName><n>/001
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !testenv.Alive(pid) {
			continue
		}
		c := strings.Join(testenv.Cmdline(pid), " ")
		if strings.Contains(c, unique) && strings.Contains(c, "cpu-llm-worker-rbee") {
			out = append(out, pid)
		}
	}
	return out
}

func waitNoWinePids(t *testing.T, dir, after string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(winePids(dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, worker processes still run: %v", after, winePids(dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killAll SIGKILLs the given Linux pids.
func killAll(pids []int) {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// waitClients waits until the server has n clients.
func waitClients(t *testing.T, s *server.Server, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.NumClients() != n {
		if time.Now().After(deadline) {
			out, _ := exec.Command("ss", "-tnp").CombinedOutput()
			var held []string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, fmt.Sprintf(":%d ", s.Addr().(*net.TCPAddr).Port)) {
					held = append(held, l)
				}
			}
			t.Fatalf("waited 60s for %s: the server has %d clients, want %d; its connections:\n%s",
				what, s.NumClients(), n, strings.Join(held, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
