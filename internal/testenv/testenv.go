// Package testenv holds what hive-agent's tests share: the test worker
// binary, an embedded NATS server, and process-table checks written
// independently of the spawner (they read /proc themselves), so a bug in the
// spawner's scan cannot hide a leaked process.
package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// WorkerBinaries are the names the test worker is installed under.
var WorkerBinaries = []string{"cpu-llm-worker-rbee", "cuda-llm-worker-rbee", "metal-llm-worker-rbee"}

// BuildWorker builds internal/testworker into dir under every worker binary
// name and returns dir. Call it from TestMain.
func BuildWorker(dir string) error {
	if runtime.GOOS == "windows" {
		return copyPrebuiltWorker(dir)
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "testworker")
	first := filepath.Join(dir, WorkerBinaries[0])
	out, err := exec.Command("go", "build", "-o", first, src).CombinedOutput()
	if err != nil {
		return fmt.Errorf("build test worker: %v\n%s", err, out)
	}
	for _, name := range WorkerBinaries[1:] {
		if err := os.Link(first, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// StockGoEnv is this process's environment with Go's own defaults: no Go
// environment file (a developer's may set GOFLAGS=-buildvcs=false, which
// hid a binary that did not start) and no GOFLAGS. Builds in tests use it,
// so they build what a user's `go build` builds.
func StockGoEnv() []string {
	return append(os.Environ(), "GOENV=off", "GOFLAGS=")
}

// RepoRoot is the module's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BuildAgent builds cmd/hive-agent into dir, with the race detector where
// it can and Go's stock settings, and returns the binary's path.
func BuildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "hive-agent")
	build := func(args ...string) ([]byte, error) {
		cmd := exec.Command("go", append(append([]string{"build"}, args...), "-o", bin, "./cmd/hive-agent")...)
		cmd.Dir, cmd.Env = RepoRoot(), StockGoEnv()
		return cmd.CombinedOutput()
	}
	out, err := build("-race")
	if err != nil {
		// -race needs cgo; fall back to a plain build.
		out2, err2 := build()
		if err2 != nil {
			return "", fmt.Errorf("build agent: %v\n%s\n%s", err2, out, out2)
		}
	}
	return bin, nil
}

// HiveID returns a hive id no other test uses.
func HiveID(t testing.TB) string {
	b := make([]byte, 5)
	rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// NATS starts an embedded NATS server on a random loopback port, shut down
// when the test ends.
func NATS(t testing.TB) *server.Server { return NATSWith(t, &server.Options{}) }

// NATSWith starts an embedded NATS server with opts (users, JetStream, …)
// on loopback, on opts.Port or a random port, shut down when the test ends.
func NATSWith(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.NoLog, opts.NoSigs = "127.0.0.1", true, true
	if opts.Port == 0 {
		opts.Port = -1
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Connect connects to s, closed when the test ends.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Marked returns the pids of live (non-zombie) processes whose environment
// names hive, workers and their children alike.
func Marked(hive string) []int {
	want := []byte("HIVE_AGENT_HIVE_ID=" + hive + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		if Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Alive reports whether pid is a live process (a zombie is not).
func Alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may contain spaces.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// WaitGone waits up to d for pid to be gone and reports whether it went.
func WaitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !Alive(pid) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return !Alive(pid)
}

// WaitMarked waits up to d until at least n live processes carry hive's
// marker, and reports whether they do.
func WaitMarked(hive string, n int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for len(Marked(hive)) < n {
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// NoLeftovers fails the test if any process carrying hive's marker is
// still alive when the test ends, and kills it so the next test starts clean.
func NoLeftovers(t testing.TB, hive string) {
	t.Cleanup(func() {
		if pids := Marked(hive); len(pids) > 0 {
			for _, pid := range pids {
				killHard(pid)
			}
			t.Errorf("processes of hive %s left running after the test: %v", hive, pids)
		}
	})
}

// Stop SIGKILLs every process of hive; for cleanups of tests that leave
// workers running on purpose.
func Stop(hive string) {
	for _, pid := range Marked(hive) {
		killHard(pid)
	}
	for _, pid := range Marked(hive) {
		WaitGone(pid, 5*time.Second)
	}
}

// Cmdline returns the argv of pid.
func Cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// Environ returns the environment of pid as a map.
func Environ(pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Main is a package's TestMain: it builds the test worker into a fresh
// directory, calls setup with it (setup may be nil), runs the tests, removes
// the directory and exits.
func Main(m *testing.M, setup func(dir string) error) {
	os.Exit(runMain(m, setup))
}

func runMain(m *testing.M, setup func(dir string) error) int {
	dir, err := os.MkdirTemp("", "hive-agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := BuildWorker(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if setup != nil {
		if err := setup(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}
