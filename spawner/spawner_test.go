//go:build unix

package spawner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rbee/hive-agent/internal/testenv"
)

const (
	testQueenURL = "http://127.0.0.1:7833"
	// readyTimeout bounds waits for a worker that is expected to get ready;
	// it is a limit against hangs, never a measurement.
	readyTimeout = 10 * time.Second
	// stopGrace is the grace for workers that exit on SIGTERM.
	stopGrace = 5 * time.Second
)

// event is one OnStart or OnExit call.
type event struct {
	kind string // "start", "exit" or "pending"
	w    Worker
	exit Exit
	// pending is set for a "pending" event (OnPendingRestart).
	pending PendingRestart
}

// harness is a Spawner of a fresh hive with the test worker, recording its
// OnStart and OnExit calls.
type harness struct {
	*Spawner
	hive   string
	logDir string

	mu     sync.Mutex
	events []event
}

// newHarness returns a Spawner for a hive no other test uses. A process of
// that hive still alive when the test ends fails the test; when the test
// failed anyway, its workers are killed first so the next tests start clean.
func newHarness(t testing.TB, portMin, portMax int) *harness {
	t.Helper()
	return newHarnessWith(t, portMin, portMax, nil)
}

// newHarnessWith is newHarness with the configuration changed by tweak.
func newHarnessWith(t testing.TB, portMin, portMax int, tweak func(*Config)) *harness {
	t.Helper()
	hive := testenv.HiveID(t)
	testenv.NoLeftovers(t, hive) // registered first, so it checks last
	h := &harness{hive: hive, logDir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			testenv.Stop(hive)
		}
	})
	cfg := Config{
		HiveID:     hive,
		WorkerDirs: []string{workerDir},
		LogDir:     h.logDir,
		PortMin:    portMin,
		PortMax:    portMax,
		OnStart: func(w Worker) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.events = append(h.events, event{kind: "start", w: w})
		},
		OnExit: func(w Worker, e Exit) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.events = append(h.events, event{kind: "exit", w: w, exit: e})
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.Spawner = s
	return h
}

// eventsOf returns the recorded events of the worker process pid.
func (h *harness) eventsOf(pid int) []event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []event
	for _, e := range h.events {
		if e.w.PID == pid {
			out = append(out, e)
		}
	}
	return out
}

// waitExit waits for OnExit of the worker process pid and checks that
// OnStart was called exactly once before it.
func (h *harness) waitExit(t *testing.T, pid int) Exit {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		evs := h.eventsOf(pid)
		if n := len(evs); n > 0 && evs[n-1].kind == "exit" {
			kinds := make([]string, n)
			for i, e := range evs {
				kinds[i] = e.kind
			}
			if !slices.Equal(kinds, []string{"start", "exit"}) {
				t.Errorf("callbacks for pid %d: got %v, want [start exit]", pid, kinds)
			}
			return evs[n-1].exit
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnExit not called for pid %d within %s (events %v)", pid, readyTimeout, evs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func binary(t testing.TB, typ WorkerType) string {
	t.Helper()
	p, err := Resolve(typ, []string{workerDir})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return p
}

func (h *harness) spec(t testing.TB, workerID, model string) Spec {
	t.Helper()
	return Spec{
		WorkerID:   workerID,
		ModelID:    model,
		Device:     mustParse(t, "cpu"),
		BinaryPath: binary(t, CPU),
		QueenURL:   testQueenURL,
		JobID:      "job-" + workerID,
		CommandID:  "cmd-" + workerID,
	}
}

func (h *harness) mustStart(t *testing.T, spec Spec) *Handle {
	t.Helper()
	hd, err := h.Start(t.Context(), spec)
	if err != nil {
		t.Fatalf("Start %s: %v", spec.WorkerID, err)
	}
	return hd
}

// startReady starts a worker and waits until its health endpoint answers,
// so it has set up its signal handling and any child.
func (h *harness) startReady(t *testing.T, workerID, model string) *Handle {
	t.Helper()
	hd := h.mustStart(t, h.spec(t, workerID, model))
	if err := hd.WaitReady(t.Context(), readyTimeout); err != nil {
		t.Fatalf("WaitReady %s: %v", workerID, err)
	}
	return hd
}

func (h *harness) mustStop(t *testing.T, workerID string, grace time.Duration) StopResult {
	t.Helper()
	res, err := h.Stop(t.Context(), workerID, grace, nil)
	if err != nil {
		t.Fatalf("Stop %s: %v", workerID, err)
	}
	return res
}

// waitLog waits until the file at path contains want and returns its content.
func waitLog(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(want)) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s does not contain %q within %s:\n%s", path, want, readyTimeout, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// statField returns field n (1-based, as in proc(5)) of /proc/<pid>/stat.
func statField(t *testing.T, pid, n int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("stat of %d: %v", pid, err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces, start at field 3.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	v, err := strconv.Atoi(fields[n-3])
	if err != nil {
		t.Fatalf("stat field %d of %d: %v", n, pid, err)
	}
	return v
}

func TestNew_Validate(t *testing.T) {
	_, err := New(Config{HiveID: "a.b", PortMin: 80, PortMax: 70})
	if err == nil {
		t.Fatal("New with a bad config: got nil, want an error")
	}
	for _, want := range []string{`hive id "a.b"`, "log dir", "port range 80-70"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	s, err := New(Config{HiveID: "h1", LogDir: t.TempDir()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if s.cfg.PortMin != 9100 || s.cfg.PortMax != 9199 {
		t.Errorf("default port range = %d-%d, want 9100-9199", s.cfg.PortMin, s.cfg.PortMax)
	}
}

func TestSpawner_StartDetachedWithMarker(t *testing.T) {
	// Marker variables the agent itself inherited must not reach the worker.
	t.Setenv("HIVE_AGENT_HIVE_ID", "stale-hive")
	t.Setenv("HIVE_AGENT_WORKER_ID", "stale-worker")
	h := newHarness(t, 9300, 9399)
	spec := h.spec(t, "w1", "test/model-a")
	hd := h.mustStart(t, spec)
	if err := hd.WaitReady(t.Context(), readyTimeout); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	pid := hd.PID

	if hd.Port < 9300 || hd.Port > 9399 {
		t.Errorf("port %d outside 9300-9399", hd.Port)
	}
	if hd.StartTime <= 0 {
		t.Errorf("StartTime = %d, want > 0", hd.StartTime)
	}
	wantArgv := []string{spec.BinaryPath, "--worker-id", "w1", "--model", "test/model-a", "--device", "cpu",
		"--port", strconv.Itoa(hd.Port), "--queen-url", testQueenURL}
	if got := testenv.Cmdline(pid); !slices.Equal(got, wantArgv) {
		t.Errorf("argv:\n got %q\nwant %q", got, wantArgv)
	}

	env := testenv.Environ(pid)
	for k, want := range map[string]string{
		"HIVE_AGENT_HIVE_ID":    h.hive,
		"HIVE_AGENT_WORKER_ID":  "w1",
		"HIVE_AGENT_JOB_ID":     "job-w1",
		"HIVE_AGENT_COMMAND_ID": "cmd-w1",
	} {
		if got := env[k]; got != want {
			t.Errorf("environment %s = %q, want %q", k, got, want)
		}
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(raw, []byte("HIVE_AGENT_HIVE_ID=")); n != 1 {
		t.Errorf("environment has HIVE_AGENT_HIVE_ID %d times, want once", n)
	}
	if _, ok := env["PATH"]; !ok {
		t.Error("environment lost PATH; want the agent's environment plus the marker")
	}

	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("Getpgid(%d) = %d, %v; want its own group", pid, pgid, err)
	}
	if sid := statField(t, pid, 6); sid != pid {
		t.Errorf("session of %d = %d, want its own session", pid, sid)
	}
	if sid, own := statField(t, pid, 6), statField(t, os.Getpid(), 6); sid == own {
		t.Errorf("worker shares the test's session %d", own)
	}

	wantLog := filepath.Join(h.logDir, h.hive, "w1.log")
	if hd.LogPath != wantLog || h.LogDir() != filepath.Dir(wantLog) {
		t.Errorf("LogPath = %q, LogDir = %q; want %q", hd.LogPath, h.LogDir(), wantLog)
	}
	for fd, want := range []string{"/dev/null", wantLog, wantLog} {
		if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); err != nil || got != want {
			t.Errorf("fd %d of the worker = %q, %v; want %q", fd, got, err, want)
		}
	}
	log := waitLog(t, wantLog, fmt.Sprintf("testworker w1 pid %d", pid))
	if !strings.HasPrefix(log, "--- hive-agent ") || !strings.Contains(log, "starting worker w1 of hive "+h.hive) {
		t.Errorf("log does not start with the agent's header:\n%s", log)
	}

	evs := h.eventsOf(pid)
	if len(evs) != 1 || evs[0].kind != "start" || evs[0].w != hd.Worker {
		t.Errorf("callbacks before the stop: got %+v, want one OnStart with %+v", evs, hd.Worker)
	}

	res := h.mustStop(t, "w1", stopGrace)
	if res.Signal != "SIGTERM" || res.Worker.PID != pid {
		t.Errorf("Stop = %+v, want SIGTERM to pid %d", res, pid)
	}
	exit := h.waitExit(t, pid)
	if exit.Code != 0 || exit.Signal != "" {
		t.Errorf("OnExit: %+v, want code 0", exit)
	}
	if got := hd.Exit(); got.Code != 0 || got.Signal != "" {
		t.Errorf("Handle.Exit() = %+v, want code 0", got)
	}
}

func TestSpawner_StartRejectsBadWorkerID(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	for _, id := range []string{"", "a.b", "w*", "w 1", strings.Repeat("w", 65)} {
		if hd, err := h.Start(t.Context(), h.spec(t, id, "m")); err == nil {
			t.Errorf("Start with worker id %q: started pid %d, want an error", id, hd.PID)
		}
	}
	if pids := testenv.Marked(h.hive); len(pids) != 0 {
		t.Errorf("marked processes %v, want none", pids)
	}
}

func TestSpawner_StartRunningWorker(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	first := h.startReady(t, "w1", "m")
	if n := len(testenv.Marked(h.hive)); n != 1 {
		t.Fatalf("marked processes: %d, want 1", n)
	}

	spec := h.spec(t, "w1", "m2")
	spec.CommandID = "cmd-retry"
	hd, err := h.Start(t.Context(), spec)
	var running *RunningError
	if !errors.As(err, &running) {
		t.Fatalf("second Start of w1: got %v, %v; want *RunningError", hd, err)
	}
	if !errors.Is(err, ErrWorkerRunning) {
		t.Errorf("errors.Is(%v, ErrWorkerRunning) = false", err)
	}
	if running.Worker.PID != first.PID || running.Worker.CommandID != "cmd-w1" || running.Worker.ModelID != "m" {
		t.Errorf("RunningError.Worker = %+v, want pid %d, command cmd-w1, model m", running.Worker, first.PID)
	}
	if n := len(testenv.Marked(h.hive)); n != 1 {
		t.Errorf("marked processes after the refused start: %d, want 1", n)
	}
	if evs := h.eventsOf(first.PID); len(evs) != 1 {
		t.Errorf("callbacks: %+v, want only the first OnStart", evs)
	}
	h.mustStop(t, "w1", stopGrace)
	h.waitExit(t, first.PID)
}

// listen holds a TCP port on loopback until the test ends.
func listen(t *testing.T, addr string) (net.Listener, error) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err == nil {
		t.Cleanup(func() { l.Close() })
	}
	return l, err
}

func TestSpawner_Ports(t *testing.T) {
	t.Run("explicit port taken by a listener", func(t *testing.T) {
		h := newHarness(t, 9300, 9399)
		l, err := listen(t, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		spec := h.spec(t, "w1", "m")
		spec.Port = l.Addr().(*net.TCPAddr).Port
		hd, err := h.Start(t.Context(), spec)
		if !errors.Is(err, ErrPortTaken) {
			t.Fatalf("Start on a held port: got %v, %v; want ErrPortTaken", hd, err)
		}
		if pids := testenv.Marked(h.hive); len(pids) != 0 {
			t.Errorf("marked processes %v, want none", pids)
		}
	})
	t.Run("explicit port of another worker", func(t *testing.T) {
		h := newHarness(t, 9300, 9399)
		w1 := h.startReady(t, "w1", "m")
		spec := h.spec(t, "w2", "m")
		spec.Port = w1.Port
		if hd, err := h.Start(t.Context(), spec); !errors.Is(err, ErrPortTaken) {
			t.Errorf("Start on w1's port: got %v, %v; want ErrPortTaken", hd, err)
		}
		h.mustStop(t, "w1", stopGrace)
	})
	t.Run("port 0 picks free ports in the range", func(t *testing.T) {
		h := newHarness(t, 9300, 9309)
		// The first port of the range is held, so the pick must skip it.
		held, heldErr := listen(t, "127.0.0.1:9300")
		w1 := h.startReady(t, "w1", "m")
		w2 := h.startReady(t, "w2", "m")
		for _, w := range []*Handle{w1, w2} {
			if w.Port < 9300 || w.Port > 9309 {
				t.Errorf("%s: port %d outside 9300-9309", w.WorkerID, w.Port)
			}
			if heldErr == nil && w.Port == 9300 {
				t.Errorf("%s got port 9300, held by %v", w.WorkerID, held.Addr())
			}
		}
		if w1.Port == w2.Port {
			t.Errorf("two spawns got the same port %d", w1.Port)
		}
		h.mustStop(t, "w1", stopGrace)
		h.mustStop(t, "w2", stopGrace)
	})
	t.Run("every port in the range taken", func(t *testing.T) {
		h := newHarness(t, 9390, 9393)
		for p := 9390; p <= 9393; p++ {
			// A port another program holds is just as taken.
			listen(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		}
		hd, err := h.Start(t.Context(), h.spec(t, "w1", "m"))
		if !errors.Is(err, ErrNoFreePort) {
			t.Fatalf("Start with no free port: got %v, %v; want ErrNoFreePort", hd, err)
		}
		if !strings.Contains(err.Error(), "9390-9393") {
			t.Errorf("error %q does not name the range", err)
		}
		if pids := testenv.Marked(h.hive); len(pids) != 0 {
			t.Errorf("marked processes %v, want none", pids)
		}
	})
}

func TestSpawner_StartCannotExec(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nsleep 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("\x00\x01\x02 not a program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, bin string }{
		{"non-executable file", notExec},
		{"garbage with mode 0755", garbage},
		{"missing file", filepath.Join(dir, "missing")},
		{"directory", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 9300, 9399)
			spec := h.spec(t, "w1", "m")
			spec.BinaryPath = tt.bin
			hd, err := h.Start(t.Context(), spec)
			if !errors.Is(err, ErrSpawn) {
				t.Fatalf("Start: got %v, %v; want ErrSpawn", hd, err)
			}
			if !strings.Contains(err.Error(), tt.bin) {
				t.Errorf("error %q does not name the binary", err)
			}
			if pids := testenv.Marked(h.hive); len(pids) != 0 {
				t.Errorf("marked processes %v, want none", pids)
			}
			h.mu.Lock()
			if len(h.events) != 0 {
				t.Errorf("callbacks %+v, want none", h.events)
			}
			h.mu.Unlock()
			b, _ := os.ReadFile(filepath.Join(h.LogDir(), "w1.log"))
			if !strings.Contains(string(b), "start failed") {
				t.Errorf("log does not record the failure:\n%s", b)
			}
		})
	}
}

func TestHandle_WaitAlive(t *testing.T) {
	// The alive window is generous: the worker crashes at once, and a worker
	// that stays up must simply outlast it.
	t.Run("crash at start", func(t *testing.T) {
		h := newHarness(t, 9300, 9399)
		hd := h.mustStart(t, h.spec(t, "w1", "m@crash"))
		err := hd.WaitAlive(t.Context(), readyTimeout)
		var exited *ExitedError
		if !errors.As(err, &exited) {
			t.Fatalf("WaitAlive: got %v, want *ExitedError", err)
		}
		if !errors.Is(err, ErrWorkerExited) {
			t.Errorf("errors.Is(%v, ErrWorkerExited) = false", err)
		}
		if exited.Exit.Code != 3 || exited.Exit.Signal != "" {
			t.Errorf("Exit = %+v, want code 3", exited.Exit)
		}
		if exited.Worker.WorkerID != "w1" || exited.Worker.PID != hd.PID {
			t.Errorf("Worker = %+v, want w1 pid %d", exited.Worker, hd.PID)
		}
		if !slices.Contains(exited.LogTail, "testworker: crashing at start as asked") {
			t.Errorf("LogTail %q lacks the worker's last words", exited.LogTail)
		}
		if !strings.Contains(err.Error(), "exited with status 3") {
			t.Errorf("error %q does not give the exit status", err)
		}
		if exit := h.waitExit(t, hd.PID); exit.Code != 3 || exit.Signal != "" {
			t.Errorf("OnExit: %+v, want code 3", exit)
		}
		if _, err := h.Find(t.Context(), "w1"); !errors.Is(err, ErrWorkerNotFound) {
			t.Errorf("Find after the crash: got %v, want ErrWorkerNotFound", err)
		}
	})
	t.Run("stays up", func(t *testing.T) {
		h := newHarness(t, 9300, 9399)
		hd := h.mustStart(t, h.spec(t, "w1", "m"))
		if err := hd.WaitAlive(t.Context(), 300*time.Millisecond); err != nil {
			t.Errorf("WaitAlive: got %v, want nil", err)
		}
		if err := hd.WaitReady(t.Context(), readyTimeout); err != nil {
			t.Errorf("WaitReady: %v", err)
		}
		h.mustStop(t, "w1", stopGrace)
		h.waitExit(t, hd.PID)
	})
}

func TestSpawner_StopTerm(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	hd := h.startReady(t, "w1", "m")
	var sent []string
	res, err := h.Stop(t.Context(), "w1", stopGrace, func(sig string, w Worker) {
		sent = append(sent, sig)
		if w.PID != hd.PID {
			t.Errorf("onSignal for pid %d, want %d", w.PID, hd.PID)
		}
	})
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if res.Signal != "SIGTERM" || res.Worker.WorkerID != "w1" || res.Worker.PID != hd.PID {
		t.Errorf("Stop = %+v, want SIGTERM to w1 pid %d", res, hd.PID)
	}
	if !slices.Equal(sent, []string{"SIGTERM"}) {
		t.Errorf("signals sent: %v, want [SIGTERM]", sent)
	}
	if !testenv.WaitGone(hd.PID, readyTimeout) {
		t.Errorf("pid %d still alive after Stop", hd.PID)
	}
	if exit := h.waitExit(t, hd.PID); exit.Code != 0 || exit.Signal != "" {
		t.Errorf("OnExit: %+v, want code 0", exit)
	}
	waitLog(t, hd.LogPath, "testworker: got SIGTERM, exiting")
	if _, err := h.Find(t.Context(), "w1"); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("Find after Stop: got %v, want ErrWorkerNotFound", err)
	}
	if _, err := h.Stop(t.Context(), "w1", stopGrace, nil); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("second Stop: got %v, want ErrWorkerNotFound", err)
	}
}

func TestSpawner_StopKillsAfterGrace(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	hd := h.startReady(t, "w1", "m@ignore-term")
	waitLog(t, hd.LogPath, "testworker: ignoring SIGTERM")
	const grace = 300 * time.Millisecond
	var sent []string
	res, err := h.Stop(t.Context(), "w1", grace, func(sig string, _ Worker) { sent = append(sent, sig) })
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if res.Signal != "SIGKILL" {
		t.Errorf("Stop signal = %q, want SIGKILL", res.Signal)
	}
	if !slices.Equal(sent, []string{"SIGTERM", "SIGKILL"}) {
		t.Errorf("signals sent: %v, want [SIGTERM SIGKILL]", sent)
	}
	// SIGKILL is only sent once the grace is over.
	if res.StoppedMS < grace.Milliseconds() {
		t.Errorf("StoppedMS = %d, want >= %d", res.StoppedMS, grace.Milliseconds())
	}
	if !testenv.WaitGone(hd.PID, readyTimeout) {
		t.Errorf("pid %d still alive after Stop", hd.PID)
	}
	if exit := h.waitExit(t, hd.PID); exit.Signal != "SIGKILL" || exit.Code != -1 {
		t.Errorf("OnExit: %+v, want killed by SIGKILL", exit)
	}
}

func TestSpawner_StopProcessGroup(t *testing.T) {
	tests := []struct {
		mode       string
		grace      time.Duration
		wantSignal string
	}{
		{"fork", stopGrace, "SIGTERM"},
		// The leader exits on SIGTERM, its child ignores it: only the
		// SIGKILL to the whole group ends the child.
		{"fork-ignore-term", 300 * time.Millisecond, "SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			h := newHarness(t, 9300, 9399)
			hd := h.startReady(t, "w1", "m@"+tt.mode)
			// The child prints its line once its signal handling is set up.
			waitLog(t, hd.LogPath, "testworker child pid")
			members := testenv.GroupMembers(hd.PID)
			if len(members) != 2 {
				t.Fatalf("group %d has members %v, want the worker and its child", hd.PID, members)
			}
			child := members[0]
			if child == hd.PID {
				child = members[1]
			}
			res := h.mustStop(t, "w1", tt.grace)
			if res.Signal != tt.wantSignal {
				t.Errorf("Stop signal = %q, want %s", res.Signal, tt.wantSignal)
			}
			// Stop returns once the group is gone, so nothing is left right away.
			if left := testenv.GroupMembers(hd.PID); len(left) != 0 {
				t.Errorf("group %d still has %v after Stop", hd.PID, left)
			}
			if testenv.Alive(child) {
				t.Errorf("child %d still alive after Stop", child)
			}
			if exit := h.waitExit(t, hd.PID); exit.Code != 0 || exit.Signal != "" {
				t.Errorf("OnExit of the leader: %+v, want code 0 (it exits on SIGTERM)", exit)
			}
		})
	}
}

// startForeign starts the worker binary like a worker, in its own session,
// but without the marker; it is killed when the test ends.
func startForeign(t *testing.T, workerID string) *exec.Cmd {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(binary(t, CPU), "--worker-id", workerID, "--model", "m", "--device", "cpu",
		"--port", strconv.Itoa(port), "--queen-url", testQueenURL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	probe := &Handle{Worker: Worker{Port: port}, done: make(chan struct{})}
	if err := probe.WaitReady(t.Context(), readyTimeout); err != nil {
		t.Fatalf("foreign worker not ready: %v", err)
	}
	return cmd
}

func TestSpawner_IgnoresUnmarkedProcesses(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	// One unmarked process shares the real worker's id, one has an id of its own.
	twin := startForeign(t, "w1")
	other := startForeign(t, "w-foreign")
	real := h.startReady(t, "w1", "m")

	ws, err := h.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(ws) != 1 || ws[0].PID != real.PID {
		t.Errorf("List = %+v, want only w1 pid %d", ws, real.PID)
	}
	if _, err := h.Find(t.Context(), "w-foreign"); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("Find(w-foreign): got %v, want ErrWorkerNotFound", err)
	}
	if _, err := h.Stop(t.Context(), "w-foreign", stopGrace, nil); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("Stop(w-foreign): got %v, want ErrWorkerNotFound", err)
	}
	if _, err := h.Stop(t.Context(), "no-such-worker", stopGrace, nil); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("Stop(no-such-worker): got %v, want ErrWorkerNotFound", err)
	}
	res := h.mustStop(t, "w1", stopGrace)
	if res.Worker.PID != real.PID {
		t.Errorf("Stop(w1) stopped pid %d, want %d", res.Worker.PID, real.PID)
	}
	h.waitExit(t, real.PID)
	for _, c := range []*exec.Cmd{twin, other} {
		if !testenv.Alive(c.Process.Pid) {
			t.Errorf("unmarked process %d (%v) was signalled", c.Process.Pid, c.Args[1:3])
		}
	}
}

func TestSpawner_IgnoresOtherHives(t *testing.T) {
	a := newHarness(t, 9300, 9399)
	b := newHarness(t, 9300, 9399)
	aw1 := a.startReady(t, "w1", "m-a")
	bw1 := b.startReady(t, "w1", "m-b") // the same worker id on another hive
	bw2 := b.startReady(t, "w2", "m-b")
	if bw1.Port == aw1.Port || bw2.Port == aw1.Port {
		t.Errorf("ports: hive a w1 %d, hive b w1 %d and w2 %d; want all different", aw1.Port, bw1.Port, bw2.Port)
	}

	ws, err := a.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(ws) != 1 || ws[0].PID != aw1.PID || ws[0].HiveID != a.hive {
		t.Errorf("hive a List = %+v, want only its w1 pid %d", ws, aw1.PID)
	}
	if w, err := a.Find(t.Context(), "w1"); err != nil || w.PID != aw1.PID {
		t.Errorf("hive a Find(w1) = pid %d, %v; want pid %d", w.PID, err, aw1.PID)
	}
	if _, err := a.Find(t.Context(), "w2"); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("hive a Find(w2): got %v, want ErrWorkerNotFound", err)
	}
	if _, err := a.Stop(t.Context(), "w2", stopGrace, nil); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("hive a Stop(w2): got %v, want ErrWorkerNotFound", err)
	}
	if res := a.mustStop(t, "w1", stopGrace); res.Worker.PID != aw1.PID {
		t.Errorf("hive a Stop(w1) stopped pid %d, want %d", res.Worker.PID, aw1.PID)
	}
	for _, w := range []*Handle{bw1, bw2} {
		if !testenv.Alive(w.PID) {
			t.Errorf("hive b's %s (pid %d) was stopped by hive a", w.WorkerID, w.PID)
		}
	}
	if ws, err := b.List(t.Context()); err != nil || len(ws) != 2 {
		t.Errorf("hive b List = %+v, %v; want w1 and w2", ws, err)
	}
	b.mustStop(t, "w1", stopGrace)
	b.mustStop(t, "w2", stopGrace)
	a.waitExit(t, aw1.PID)
	b.waitExit(t, bw1.PID)
	b.waitExit(t, bw2.PID)
}

func TestSpawner_List(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	if ws, err := h.List(t.Context()); err != nil || ws == nil || len(ws) != 0 {
		t.Fatalf("List of an empty hive = %#v, %v; want an empty slice", ws, err)
	}
	begin := time.Now()
	cudaSpec := h.spec(t, "w-a", "org/cuda-model")
	cudaSpec.Device = mustParse(t, "cuda:0")
	cudaSpec.BinaryPath = binary(t, CUDA)
	cpuSpec := h.spec(t, "w-b", "org/cpu-model")
	cpuSpec.Device = mustParse(t, "CPU-0")
	// Started out of order; w-c forks a child that inherits the marker.
	var handles []*Handle
	for _, spec := range []Spec{h.spec(t, "w-c", "org/model@fork"), cudaSpec, cpuSpec} {
		hd := h.mustStart(t, spec)
		if err := hd.WaitReady(t.Context(), readyTimeout); err != nil {
			t.Fatalf("WaitReady %s: %v", spec.WorkerID, err)
		}
		handles = append(handles, hd)
	}
	fork := handles[0]
	waitLog(t, fork.LogPath, "testworker child pid")
	if members := testenv.GroupMembers(fork.PID); len(members) != 2 {
		t.Fatalf("group of w-c: %v, want the worker and its child", members)
	}
	if marked := testenv.Marked(h.hive); len(marked) != 4 {
		t.Fatalf("marked processes %v, want 3 workers and 1 child", marked)
	}

	ws, err := h.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.WorkerID)
	}
	if !slices.Equal(ids, []string{"w-a", "w-b", "w-c"}) {
		t.Fatalf("List ids = %v, want [w-a w-b w-c] (the fork child is no worker)", ids)
	}
	byID := map[string]*Handle{}
	for _, hd := range handles {
		byID[hd.WorkerID] = hd
	}
	wantType := map[string]WorkerType{"w-a": CUDA, "w-b": CPU, "w-c": CPU}
	for _, got := range ws {
		want := byID[got.WorkerID].Worker
		if got.WorkerType != wantType[got.WorkerID] {
			t.Errorf("%s: WorkerType = %q, want %q", got.WorkerID, got.WorkerType, wantType[got.WorkerID])
		}
		if got.RSSBytes == 0 {
			t.Errorf("%s: RSSBytes = 0, want > 0", got.WorkerID)
		}
		if got.StartTime <= 0 {
			t.Errorf("%s: StartTime = %d, want > 0", got.WorkerID, got.StartTime)
		}
		// Milliseconds since the epoch, read from the kernel's boot-relative
		// ticks, so only roughly the wall clock at the start.
		if d := got.StartedAt().Sub(begin); d < -time.Minute || d > time.Minute {
			t.Errorf("%s: StartedAt = %v, want about %v", got.WorkerID, got.StartedAt(), begin)
		}
		// Everything but the memory must equal what Start reported.
		got.RSSBytes = 0
		if got != want {
			t.Errorf("List entry:\n got %+v\nwant %+v", got, want)
		}
		if got.BinaryPath != binary(t, got.WorkerType) || !filepath.IsAbs(got.LogPath) {
			t.Errorf("%s: BinaryPath %q, LogPath %q", got.WorkerID, got.BinaryPath, got.LogPath)
		}
	}
	if w, err := h.Find(t.Context(), "w-c"); err != nil || w.PID != fork.PID {
		t.Errorf("Find(w-c) = pid %d, %v; want the leader %d", w.PID, err, fork.PID)
	}

	for _, hd := range handles {
		h.mustStop(t, hd.WorkerID, stopGrace)
		h.waitExit(t, hd.PID)
	}
	if ws, err := h.List(t.Context()); err != nil || len(ws) != 0 {
		t.Errorf("List after stopping all = %+v, %v; want none", ws, err)
	}
}

// A child left behind by a worker that died carries the marker but leads
// no group: it is no worker, so list and find do not report it.
// A worker started by an earlier run of the agent is not this Spawner's
// child: when its main process dies, what it forked runs on as an orphan
// that carries the marker but leads no group. It is not a worker (not
// listed, not found); the README documents how to stop it by hand.
func TestSpawner_OrphanedChildIsNoWorker(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	w := Worker{HiveID: h.hive, WorkerID: "w1", ModelID: "m@fork,crash-after=300ms", Device: "cpu", WorkerType: CPU,
		Port: 9398, BinaryPath: binary(t, CPU), LogPath: filepath.Join(t.TempDir(), "w1.log")}
	earlier := exec.Command(w.BinaryPath, "--worker-id", "w1", "--model", w.ModelID, "--device", "cpu",
		"--port", "9398", "--queen-url", testQueenURL)
	earlier.Env = append(os.Environ(), markerEnv(w)...)
	earlier.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := earlier.Start(); err != nil {
		t.Fatal(err)
	}
	leader := earlier.Process.Pid
	deadline := time.Now().Add(readyTimeout)
	for len(testenv.GroupMembers(leader)) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	earlier.Wait() // the leader exits 3 after 300 ms
	orphans := testenv.GroupMembers(leader)
	if len(orphans) != 1 || orphans[0] == leader {
		t.Fatalf("group %d after the leader died: %v, want its child", leader, orphans)
	}
	t.Cleanup(func() {
		syscall.Kill(orphans[0], syscall.SIGKILL)
		testenv.WaitGone(orphans[0], readyTimeout)
	})
	if ws, err := h.List(t.Context()); err != nil || len(ws) != 0 {
		t.Errorf("List = %+v, %v; want no workers", ws, err)
	}
	if w, err := h.Find(t.Context(), "w1"); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("Find(w1) = pid %d, %v; want ErrWorkerNotFound", w.PID, err)
	}
}

func TestSpawner_LogRotation(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	logPath := filepath.Join(h.LogDir(), "w1.log")
	var pids []int
	for _, model := range []string{"first", "second", "third"} {
		hd := h.startReady(t, "w1", "m-"+model)
		if hd.LogPath != logPath {
			t.Fatalf("LogPath = %q, want %q", hd.LogPath, logPath)
		}
		waitLog(t, logPath, fmt.Sprintf("testworker w1 pid %d model m-%s", hd.PID, model))
		h.mustStop(t, "w1", stopGrace)
		h.waitExit(t, hd.PID)
		pids = append(pids, hd.PID)
	}
	cur, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := os.ReadFile(logPath + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(cur); !strings.Contains(s, fmt.Sprintf("pid %d model m-third", pids[2])) ||
		strings.Contains(s, "m-second") || strings.Contains(s, "m-first") {
		t.Errorf("w1.log should hold only the third run:\n%s", s)
	}
	if s := string(prev); !strings.Contains(s, fmt.Sprintf("pid %d model m-second", pids[1])) ||
		!strings.Contains(s, "got SIGTERM") || strings.Contains(s, "m-first") || strings.Contains(s, "m-third") {
		t.Errorf("w1.log.1 should hold only the second run:\n%s", s)
	}
	if n := strings.Count(string(cur), "--- hive-agent "); n != 1 {
		t.Errorf("w1.log has %d agent headers, want 1", n)
	}
	entries, _ := os.ReadDir(h.LogDir())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"w1.log", "w1.log.1"}) {
		t.Errorf("log dir holds %v, want [w1.log w1.log.1]", names)
	}
}

func TestSpawner_VerifyIdentity(t *testing.T) {
	h := newHarness(t, 9300, 9399)
	hd := h.startReady(t, "w1", "m")
	w, err := h.Find(t.Context(), "w1")
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if err := h.verify(t.Context(), w); err != nil {
		t.Fatalf("verify of the live worker: %v", err)
	}
	reused := w
	reused.StartTime++ // the pid now names a process that started at another time
	renamed := w
	renamed.WorkerID = "w2"
	otherHive := w
	otherHive.HiveID = "another-hive"
	notWorker := w
	notWorker.PID = os.Getpid()
	for name, w := range map[string]Worker{
		"other start time": reused, "other worker id": renamed, "other hive": otherHive, "unmarked pid": notWorker,
	} {
		if err := h.verify(t.Context(), w); !errors.Is(err, ErrWorkerNotFound) {
			t.Errorf("verify with %s: got %v, want ErrWorkerNotFound", name, err)
		}
	}
	h.mustStop(t, "w1", stopGrace)
	h.waitExit(t, hd.PID)
	if err := h.verify(t.Context(), w); !errors.Is(err, ErrWorkerNotFound) {
		t.Errorf("verify after the exit: got %v, want ErrWorkerNotFound", err)
	}
}

func TestHandle_WaitReady(t *testing.T) {
	t.Run("ready after a while", func(t *testing.T) {
		h := newHarness(t, 9300, 9399)
		hd := h.mustStart(t, h.spec(t, "w1", "m@ready-after=500ms"))
		if err := hd.WaitReady(t.Context(), readyTimeout); err != nil {
			t.Errorf("WaitReady: got %v, want nil", err)
		}
		h.mustStop(t, "w1", stopGrace)
		h.waitExit(t, hd.PID)
	})
	t.Run("never ready", func(t *testing.T) {
		h := newHarness(t, 9300, 9399)
		hd := h.mustStart(t, h.spec(t, "w1", "m@no-health"))
		err := hd.WaitReady(t.Context(), 300*time.Millisecond)
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("WaitReady: got %v, want ErrNotReady", err)
		}
		if !strings.Contains(err.Error(), hd.HealthURL()) {
			t.Errorf("error %q does not name the health URL", err)
		}
		if !testenv.Alive(hd.PID) {
			t.Errorf("worker %d died; a worker that is not ready keeps running", hd.PID)
		}
		if _, err := h.Find(t.Context(), "w1"); err != nil {
			t.Errorf("Find after the timeout: %v", err)
		}
		h.mustStop(t, "w1", stopGrace)
		h.waitExit(t, hd.PID)
	})
	t.Run("dies while waiting", func(t *testing.T) {
		h := newHarness(t, 9300, 9399)
		hd := h.mustStart(t, h.spec(t, "w1", "m@crash-after=200ms,no-health"))
		err := hd.WaitReady(t.Context(), readyTimeout)
		var exited *ExitedError
		if !errors.As(err, &exited) {
			t.Fatalf("WaitReady: got %v, want *ExitedError", err)
		}
		if exited.Exit.Code != 3 {
			t.Errorf("Exit = %+v, want code 3", exited.Exit)
		}
		if !slices.Contains(exited.LogTail, "testworker: crashing as asked") {
			t.Errorf("LogTail %q lacks the worker's last words", exited.LogTail)
		}
		if exit := h.waitExit(t, hd.PID); exit.Code != 3 {
			t.Errorf("OnExit: %+v, want code 3", exit)
		}
	})
	t.Run("caller gives up", func(t *testing.T) {
		h := newHarness(t, 9300, 9399)
		hd := h.mustStart(t, h.spec(t, "w1", "m@no-health"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := hd.WaitReady(ctx, readyTimeout); !errors.Is(err, context.Canceled) || errors.Is(err, ErrNotReady) {
			t.Errorf("WaitReady with a canceled context: got %v, want context.Canceled", err)
		}
		h.mustStop(t, "w1", stopGrace)
		h.waitExit(t, hd.PID)
	})
}

func writeLog(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "w.log")
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func numbered(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

func TestLogTail(t *testing.T) {
	ten := strings.Join(numbered(1, 10), "\n") + "\n"
	long := strings.Repeat("x", 10<<10)
	tests := []struct {
		name    string
		content string
		n       int
		want    []string
	}{
		{"last lines in order", ten, 3, numbered(8, 10)},
		{"exactly all", ten, 10, numbered(1, 10)},
		{"more than the file has", ten, 50, numbered(1, 10)},
		{"no final newline", strings.TrimSuffix(ten, "\n"), 3, numbered(8, 10)},
		{"zero lines", ten, 0, []string{}},
		{"negative", ten, -1, []string{}},
		{"empty file", "", 5, []string{}},
		{"empty lines kept", "a\n\nb\n", 3, []string{"a", "", "b"}},
		{"carriage returns dropped", "a\r\nb\r\n", 2, []string{"a", "b"}},
		{"long line cut", "before\n" + long + "\n", 2, []string{"before", strings.Repeat("x", MaxLogLineBytes) + "…"}},
		{"line of exactly the limit kept", strings.Repeat("y", MaxLogLineBytes) + "\n", 1, []string{strings.Repeat("y", MaxLogLineBytes)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LogTail(writeLog(t, tt.content), tt.n)
			if err != nil {
				t.Fatalf("LogTail: %v", err)
			}
			if got == nil || !slices.Equal(got, tt.want) {
				t.Errorf("LogTail(%d) = %#v, want %#v", tt.n, got, tt.want)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		got, err := LogTail(filepath.Join(t.TempDir(), "missing.log"), 5)
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("LogTail(missing) = %#v, %v; want an empty slice", got, err)
		}
	})
	t.Run("multi-byte line cut at a rune boundary", func(t *testing.T) {
		got, err := LogTail(writeLog(t, strings.Repeat("é", 6000)+"\n"), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !utf8.ValidString(got[0]) || !strings.HasSuffix(got[0], "…") ||
			len(got[0]) > MaxLogLineBytes+len("…") {
			t.Errorf("LogTail = %d lines, first %d bytes, valid UTF-8 %v", len(got), len(got[0]), utf8.ValidString(got[0]))
		}
	})
	t.Run("file bigger than 64 KB", func(t *testing.T) {
		// Lines of odd lengths, so the read chunks end mid-line.
		var b strings.Builder
		var all []string
		for i := 1; b.Len() < 200<<10; i++ {
			line := fmt.Sprintf("line %d %s", i, strings.Repeat("z", i%97))
			all = append(all, line)
			b.WriteString(line + "\n")
		}
		p := writeLog(t, b.String())
		for _, n := range []int{1, 3, 500, 1000} {
			got, err := LogTail(p, n)
			if err != nil {
				t.Fatal(err)
			}
			if want := all[len(all)-n:]; !slices.Equal(got, want) {
				t.Errorf("LogTail(%d) of %d lines: got %d lines (last %q), want %d (last %q)",
					n, len(all), len(got), got[len(got)-1], len(want), want[len(want)-1])
			}
		}
	})
	t.Run("tail bounded in bytes", func(t *testing.T) {
		var b strings.Builder
		for i := 1; i <= 1000; i++ {
			line := fmt.Sprintf("%04d ", i)
			b.WriteString(line + strings.Repeat("k", 2048-len(line)) + "\n")
		}
		got, err := LogTail(writeLog(t, b.String()), 1000)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, l := range got {
			total += len(l)
		}
		if total > MaxLogTailBytes || len(got) == 0 {
			t.Fatalf("LogTail(1000) = %d lines, %d bytes; want some, at most %d bytes", len(got), total, MaxLogTailBytes)
		}
		// The newest lines are kept, contiguous and in order.
		first := 1000 - len(got) + 1
		for i, l := range got {
			if want := fmt.Sprintf("%04d ", first+i); !strings.HasPrefix(l, want) || len(l) != 2048 {
				t.Fatalf("line %d of the tail starts %q (%d bytes), want %q (2048 bytes)", i, l[:5], len(l), want)
			}
		}
	})
}
