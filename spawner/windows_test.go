//go:build windows

package spawner

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/windows"

	"github.com/rbee/hive-agent/internal/testenv"
)

// underWine reports whether this Windows program runs under Wine, which
// delivers no console control events (docs/platforms.md).
var underWine = func() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}()

const readyWait = 60 * time.Second // a first start under Wine is slow

// winHarness is a Spawner of a fresh hive with its start and exit events.
type winHarness struct {
	*Spawner
	hive string
	mu   sync.Mutex
	exit map[int]Exit
}

func newWinHarness(t *testing.T) *winHarness {
	t.Helper()
	h := &winHarness{hive: testenv.HiveID(t), exit: map[int]Exit{}}
	t.Cleanup(func() { checkNoneLeft(t, h.hive) })
	s, err := New(Config{
		HiveID: h.hive, WorkerDirs: []string{workerDir}, LogDir: t.TempDir(), PortMin: 23100, PortMax: 23199,
		LockPath: t.TempDir() + `\start.lock`,
		OnExit: func(w Worker, e Exit) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.exit[w.PID] = e
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.Spawner = s
	return h
}

func (h *winHarness) start(t *testing.T, id, model string) *Handle {
	t.Helper()
	bin, err := h.Resolve("cpu-llm-worker-rbee")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := ParseDevice("cpu")
	hd, err := h.Start(context.Background(), Spec{WorkerID: id, ModelID: model, Device: d, BinaryPath: bin, QueenURL: "http://127.0.0.1:7833"})
	if err != nil {
		t.Fatalf("Start %s: %v", id, err)
	}
	return hd
}

// marked lists the live processes that carry hive's marker, except
// console hosts (Wine starts them with the worker's environment).
func marked(hive string) []int {
	pids, _ := allPids()
	var out []int
	for _, pid := range pids {
		if m := readMarker(pid); m != nil && m.hive() == hive && pid != os.Getpid() && !isConsoleHost(pid) {
			if h, err := windows.OpenProcess(queryAccess, false, uint32(pid)); err == nil {
				if running(h) {
					out = append(out, pid)
				}
				windows.CloseHandle(h)
			}
		}
	}
	return out
}

// checkNoneLeft fails the test when a process of hive still runs, and ends it.
func checkNoneLeft(t *testing.T, hive string) {
	if pids := marked(hive); len(pids) > 0 {
		for _, pid := range pids {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
		t.Errorf("processes of hive %s left running: %v", hive, pids)
	}
}

func waitHealthy(t *testing.T, w Worker) {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		if r, err := http.Get(w.HealthURL()); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s not healthy at %s within %s", w.WorkerID, w.HealthURL(), readyWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantStopSignal(t *testing.T, got string) {
	t.Helper()
	want := "CTRL_BREAK"
	if underWine {
		want = "TERMINATE" // Wine runs no console control handler
	}
	if got != want {
		t.Errorf("stop signal = %q, want %q (under Wine: %v)", got, want, underWine)
	}
}

func TestWindows_StartListStopInJob(t *testing.T) {
	h := newWinHarness(t)
	hd := h.start(t, "w1", "test/m")
	waitHealthy(t, hd.Worker)
	ws, err := h.List(context.Background())
	if err != nil || len(ws) != 1 || ws[0].PID != hd.PID || ws[0].StartTime != hd.StartTime || ws[0].Port != hd.Port {
		t.Fatalf("List = %+v, %v; want the one worker pid %d start %d", ws, err, hd.PID, hd.StartTime)
	}
	job, err := openJob(jobName(h.hive, "w1", hd.PID))
	if err != nil {
		t.Fatalf("open the worker's job: %v", err)
	}
	defer windows.CloseHandle(job)
	if pids, err := jobPids(job); err != nil || len(pids) != 1 || pids[0] != hd.PID {
		t.Fatalf("job pids = %v, %v; want [%d]", pids, err, hd.PID)
	}
	if _, err := h.Start(context.Background(), Spec{WorkerID: "w1", ModelID: "m", Device: Device{Raw: "cpu", Type: CPU, Index: -1}, BinaryPath: hd.BinaryPath}); err == nil {
		t.Fatal("a second start of w1 succeeded")
	}
	res, err := h.Stop(context.Background(), "w1", time.Second, nil)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStopSignal(t, res.Signal)
	if pids, err := jobPids(job); err != nil || len(pids) != 0 {
		t.Errorf("job pids after Stop = %v, %v; want none", pids, err)
	}
	<-hd.Done()
	if e := hd.Exit(); underWine && e.Signal != "TERMINATE" {
		t.Errorf("exit = %+v, want Signal TERMINATE", e)
	}
	if _, err := h.Find(context.Background(), "w1"); err == nil {
		t.Error("Find after Stop still finds w1")
	}
}

func TestWindows_StopEndsTheWholeTree(t *testing.T) {
	h := newWinHarness(t)
	hd := h.start(t, "tree", "test/m@fork")
	waitHealthy(t, hd.Worker)
	job, err := openJob(jobName(h.hive, "tree", hd.PID))
	if err != nil {
		t.Fatalf("open job: %v", err)
	}
	defer windows.CloseHandle(job)
	var pids []int
	for deadline := time.Now().Add(readyWait); len(pids) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pids, _ = jobPids(job)
	}
	if len(pids) != 2 {
		t.Fatalf("job pids = %v, want the worker and its child", pids)
	}
	if got := marked(h.hive); len(got) != 2 {
		t.Fatalf("marked processes = %v, want 2 (the child inherits the marker)", got)
	}
	if ws, _ := h.List(context.Background()); len(ws) != 1 || ws[0].PID != hd.PID {
		t.Fatalf("List = %+v, want only the worker (the child is in its job, but no job bears its pid)", ws)
	}
	res, err := h.Stop(context.Background(), "tree", 500*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStopSignal(t, res.Signal)
	if got := marked(h.hive); len(got) != 0 {
		t.Errorf("after Stop, still running: %v", got)
	}
}

func TestWindows_CrashAtStart(t *testing.T) {
	h := newWinHarness(t)
	hd := h.start(t, "crash", "test/m@crash")
	select {
	case <-hd.Done():
	case <-time.After(readyWait):
		t.Fatal("crashing worker's exit not seen")
	}
	if e := hd.Exit(); e.Code != 3 || e.Signal != "" {
		t.Errorf("exit = %+v, want code 3", e)
	}
	if _, err := h.Stop(context.Background(), "crash", time.Second, nil); err == nil {
		t.Error("Stop of a crashed worker succeeded; want not found")
	}
}

// The helper is a first agent: it starts a worker and exits without
// stopping it, as an agent killed or restarted would.
const winHelperEnv = "SPAWNER_WIN_HELPER"

func runWinHelper() int {
	dir := os.Getenv("HELPER_WORKER_DIR")
	s, err := New(Config{HiveID: os.Getenv(winHelperEnv), WorkerDirs: []string{dir}, LogDir: os.Getenv("HELPER_LOG_DIR"),
		PortMin: 23200, PortMax: 23299, LockPath: os.Getenv("HELPER_LOG_DIR") + `\start.lock`})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	bin, err := s.Resolve("cpu-llm-worker-rbee")
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	d, _ := ParseDevice("cpu")
	hd, err := s.Start(context.Background(), Spec{WorkerID: "kept", ModelID: "test/m", Device: d, BinaryPath: bin, QueenURL: "http://127.0.0.1:7833"})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ok", hd.PID)
	return 0
}

func TestWindows_AdoptAfterTheAgentExited(t *testing.T) {
	h := newWinHarness(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), winHelperEnv+"="+h.hive, "HELPER_WORKER_DIR="+workerDir, "HELPER_LOG_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok ") {
		t.Fatalf("helper agent: %v: %s", err, out)
	}
	var pid int
	fmt.Sscanf(string(out), "ok %d", &pid)
	ws, err := h.List(context.Background())
	if err != nil || len(ws) != 1 || ws[0].PID != pid || ws[0].WorkerID != "kept" {
		t.Fatalf("List after the first agent exited = %+v, %v; want worker kept pid %d", ws, err, pid)
	}
	waitHealthy(t, ws[0])
	adopted, err := h.Adopt(context.Background())
	if err != nil || len(adopted) != 1 || adopted[0].PID != pid {
		t.Fatalf("Adopt = %+v, %v", adopted, err)
	}
	res, err := h.Stop(context.Background(), "kept", 500*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("Stop of the adopted worker: %v", err)
	}
	wantStopSignal(t, res.Signal)
	h.mu.Lock()
	e, ok := h.exit[pid]
	h.mu.Unlock()
	if !ok || !e.Adopted {
		t.Errorf("exit of the adopted worker = %+v (reported %v), want Adopted", e, ok)
	}
}

func TestWindows_StartLockExcludes(t *testing.T) {
	path := t.TempDir() + `\start.lock`
	unlock, err := lockStart(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := lockStart(ctx, path); err == nil {
		t.Fatal("second lockStart while held succeeded")
	}
	unlock()
	again, err := lockStart(context.Background(), path)
	if err != nil {
		t.Fatalf("lockStart after unlock: %v", err)
	}
	again()
}
