//go:build unix

package spawner

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

// privateLock gives harnesses a start lock (and so a record) of their
// own, trusted for an hour so that what a test checks does not depend on
// how fast the machine is.
func privateLock(t *testing.T) func(*Config) {
	path := filepath.Join(t.TempDir(), "start.lock")
	return func(c *Config) { c.LockPath, c.recordTrust = path, time.Hour }
}

func readRecordFile(t *testing.T, h *harness) startRecord {
	t.Helper()
	rec, ok := readStartRecord(recordPath(h.cfg.LockPath))
	if !ok {
		b, err := os.ReadFile(recordPath(h.cfg.LockPath))
		t.Fatalf("start record unreadable: %v %q", err, b)
	}
	return rec
}

func writeRecordFile(t *testing.T, h *harness, rec startRecord) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recordPath(h.cfg.LockPath), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func rowOf(rec startRecord, hive, id string) (recordRow, bool) {
	i := slices.IndexFunc(rec.Workers, func(r recordRow) bool { return r.Hive == hive && r.Worker == id })
	if i < 0 {
		return recordRow{}, false
	}
	return rec.Workers[i], true
}

// The first Start reads the process table and leaves a record of what it
// knows; the Starts after it, of this agent and of another one sharing
// the lock, read the record instead, and it keeps their promises: no port
// twice, no worker id of a hive twice.
func TestStartRecord_StandsInForTheTable(t *testing.T) {
	lock := privateLock(t)
	a := newHarnessWith(t, 9300, 9399, lock)
	b := newHarnessWith(t, 9300, 9399, lock)
	aw1 := a.startReady(t, "w1", "m")
	if n := a.tableReads.Load(); n != 1 {
		t.Errorf("a's first Start read the table %d times, want 1 (there was no record)", n)
	}
	rec := readRecordFile(t, a)
	if r, ok := rowOf(rec, a.hive, "w1"); !ok || r.PID != aw1.PID || r.Port != aw1.Port {
		t.Errorf("record %+v: want a's w1 (pid %d, port %d)", rec, aw1.PID, aw1.Port)
	}

	bw1 := b.startReady(t, "w1", "m") // the same id on another hive
	spec := b.spec(t, "w2", "m")
	spec.Port = aw1.Port
	if _, err := b.Start(t.Context(), spec); !errors.Is(err, ErrPortTaken) {
		t.Errorf("b's Start on a's port %d: got %v, want ErrPortTaken", aw1.Port, err)
	}
	if _, err := a.Start(t.Context(), a.spec(t, "w1", "m")); !isRunning(err, aw1.PID) {
		t.Errorf("a's second Start of w1: got %v, want a RunningError for pid %d", err, aw1.PID)
	}
	if bw1.Port == aw1.Port {
		t.Errorf("a's w1 and b's w1 share port %d", aw1.Port)
	}
	if na, nb := a.tableReads.Load(), b.tableReads.Load(); na != 1 || nb != 0 {
		t.Errorf("table reads: a %d, b %d; want 1 and 0 (the record stood in)", na, nb)
	}
	rec = readRecordFile(t, b)
	if _, ok := rowOf(rec, b.hive, "w1"); !ok {
		t.Errorf("record %+v lacks b's w1", rec)
	}
	if _, ok := rowOf(rec, a.hive, "w1"); !ok {
		t.Errorf("record %+v lacks a's w1", rec)
	}

	// A stopped worker leaves the record at the next Start.
	a.mustStop(t, "w1", stopGrace)
	a.waitExit(t, aw1.PID)
	aw2 := a.startReady(t, "w2", "m")
	rec = readRecordFile(t, a)
	if _, ok := rowOf(rec, a.hive, "w1"); ok {
		t.Errorf("record %+v still lists a's stopped w1", rec)
	}
	a.mustStop(t, "w2", stopGrace)
	b.mustStop(t, "w1", stopGrace)
	a.waitExit(t, aw2.PID)
	b.waitExit(t, bw1.PID)
}

func isRunning(err error, pid int) bool {
	var re *RunningError
	return errors.As(err, &re) && re.Worker.PID == pid
}

// An entry is checked against the process table before it counts: one of
// a process that is gone, of a live process that is no worker, or of a
// worker that carries another id holds neither its port nor its id.
func TestStartRecord_DropsEntriesThatAreNotTheWorker(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, privateLock(t))
	real := h.startReady(t, "real", "m")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	ports := []int{ownPort(t), ownPort(t), ownPort(t)}
	writeRecordFile(t, h, startRecord{ScannedMS: time.Now().UnixMilli(), Workers: []recordRow{
		{Hive: h.hive, Worker: "real", Port: real.Port, PID: real.PID},
		{Hive: h.hive, Worker: "gone", Port: ports[0], PID: dead.Process.Pid},
		{Hive: h.hive, Worker: "self", Port: ports[1], PID: os.Getpid()},
		{Hive: h.hive, Worker: "alias", Port: ports[2], PID: real.PID},
	}})
	var started []*Handle
	for i, id := range []string{"gone", "self", "alias"} {
		spec := h.spec(t, id, "m")
		spec.Port = ports[i]
		hd, err := h.Start(t.Context(), spec)
		if err != nil {
			t.Errorf("Start of %s on port %d, which a false entry claims: %v", id, ports[i], err)
			continue
		}
		started = append(started, hd)
	}
	if _, err := h.Start(t.Context(), h.spec(t, "real", "m")); !isRunning(err, real.PID) {
		t.Errorf("Start of real, which its true entry names: got %v, want a RunningError for pid %d", err, real.PID)
	}
	if n := h.tableReads.Load(); n != 1 {
		t.Errorf("the table was read %d times, want once (the first Start, before any record)", n)
	}
	rec := readRecordFile(t, h)
	for _, r := range rec.Workers {
		if r.PID == dead.Process.Pid || r.PID == os.Getpid() || (r.Worker == "alias" && r.PID == real.PID) {
			t.Errorf("record %+v keeps a false entry %+v", rec, r)
		}
	}
	for _, hd := range append(started, real) {
		h.mustStop(t, hd.WorkerID, stopGrace)
		h.waitExit(t, hd.PID)
	}
}

// A record that does not parse (an agent died writing it) or is older
// than the trust window is not used: the process table is read.
func TestStartRecord_UnreadableOrOldReadsTheTable(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, privateLock(t))
	w1 := h.startReady(t, "w1", "m")
	for _, c := range []struct {
		name    string
		content func() []byte
	}{
		{"torn", func() []byte {
			b, _ := os.ReadFile(recordPath(h.cfg.LockPath))
			return append(b[:len(b)/2:len(b)/2], "garbage"...)
		}},
		{"old", func() []byte {
			b, _ := json.Marshal(startRecord{ScannedMS: time.Now().Add(-2 * time.Hour).UnixMilli()})
			return b
		}},
	} {
		if err := os.WriteFile(recordPath(h.cfg.LockPath), c.content(), 0o600); err != nil {
			t.Fatal(err)
		}
		before := h.tableReads.Load()
		if _, err := h.Start(t.Context(), h.spec(t, "w1", "m")); !isRunning(err, w1.PID) {
			t.Errorf("%s record: Start of the running w1 got %v, want a RunningError for pid %d", c.name, err, w1.PID)
		}
		if n := h.tableReads.Load() - before; n != 1 {
			t.Errorf("%s record: the table was read %d times, want once", c.name, n)
		}
		if _, ok := rowOf(readRecordFile(t, h), h.hive, "w1"); !ok {
			t.Errorf("%s record: the record written after the scan lacks w1", c.name)
		}
	}
	h.mustStop(t, "w1", stopGrace)
	h.waitExit(t, w1.PID)
}

// A shorter record is padded with spaces (still one JSON value), a far
// shorter one truncated; either way it reads back as written.
func TestWriteStartRecord_PadsOrShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "start.lock.workers")
	at := time.UnixMilli(1_796_000_000_000)
	many := make([]Worker, 200)
	for i := range many {
		many[i] = Worker{HiveID: "h", WorkerID: "w" + string(rune('a'+i%26)), Port: 9000 + i, PID: 1000 + i}
	}
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	for _, step := range []struct {
		name    string
		workers []Worker
		grows   func(before, after int64) bool
	}{
		{"200 workers", many, func(b, a int64) bool { return a > b }},
		{"190 workers (padded)", many[:190], func(b, a int64) bool { return a == b }},
		{"1 worker (truncated)", many[:1], func(b, a int64) bool { return a < b/4 }},
	} {
		before := int64(0)
		if _, err := os.Stat(path); err == nil {
			before = size()
		}
		if err := writeStartRecord(path, step.workers, at); err != nil {
			t.Fatal(err)
		}
		if !step.grows(before, size()) {
			t.Errorf("%s: file %d bytes, was %d", step.name, size(), before)
		}
		rec, ok := readStartRecord(path)
		if !ok || rec.ScannedMS != at.UnixMilli() || len(rec.Workers) != len(step.workers) ||
			rec.Workers[len(rec.Workers)-1].PID != step.workers[len(step.workers)-1].PID {
			t.Errorf("%s: read back %v %+v", step.name, ok, rec)
		}
	}
}

// An agent in another process reads the record, checks this agent's
// worker in it against the process table and writes it back: the worker
// stays, so this agent refuses to start its id again. (Each process
// computes start times with an offset of its own, see startTimeOffsetMS:
// when entries were checked by start time, the other agent dropped this
// one's worker and this one started a twin; seen in CI.)
func TestStartRecord_AnotherProcessKeepsOurWorkers(t *testing.T) {
	lock := privateLock(t)
	a := newHarnessWith(t, 9300, 9399, lock)
	b := newHarnessWith(t, 9300, 9399, lock) // the helper's hive and log dir
	t.Cleanup(func() { testenv.Stop(b.hive) })
	aw1 := a.startReady(t, "w1", "m")
	// Fresh, so the helper reads the record rather than the table.
	rec := readRecordFile(t, a)
	rec.ScannedMS = time.Now().UnixMilli()
	writeRecordFile(t, a, rec)
	t.Setenv("HELPER_LOCK", a.cfg.LockPath)
	helper, out := startHelper(t, b.hive, b.logDir, ContainmentAuto, 9300, 9399, "m", []string{"x1"})
	res := waitHelper(t, helper, out)
	if len(res) != 1 || res[0].status != "ok" {
		t.Fatalf("helper: %+v\n%s", res, out)
	}
	if res[0].port == aw1.Port {
		t.Errorf("the helper's x1 got a's port %d", aw1.Port)
	}
	rec = readRecordFile(t, a)
	if _, ok := rowOf(rec, a.hive, "w1"); !ok {
		t.Errorf("the record the other process wrote lacks a's w1: %+v", rec)
	}
	if _, ok := rowOf(rec, b.hive, "x1"); !ok {
		t.Errorf("the record the other process wrote lacks its x1: %+v", rec)
	}
	if _, err := a.Start(t.Context(), a.spec(t, "w1", "m")); !isRunning(err, aw1.PID) {
		t.Errorf("a's Start of w1 after the other process wrote the record: got %v, want a RunningError for pid %d", err, aw1.PID)
	}
	if n := a.tableReads.Load(); n != 1 {
		t.Errorf("a read the table %d times, want once (before there was a record)", n)
	}
	a.mustStop(t, "w1", stopGrace)
	a.waitExit(t, aw1.PID)
	if _, err := b.Stop(t.Context(), "x1", stopGrace, nil); err != nil {
		t.Errorf("Stop x1: %v", err)
	}
}

// Should the record ever lack a running worker (an agent of an earlier
// version started it, or a bug), a Start of that worker's id in cgroup
// mode still finds it in the cgroup it would reuse: it answers that the
// worker runs and leaves it alone, rather than emptying the cgroup and
// starting a twin.
func TestStartRecord_MissingWorkerIsFoundInItsCgroup(t *testing.T) {
	h := newHarnessWith(t, 9300, 9399, func(c *Config) {
		privateLock(t)(c)
		c.Containment = ContainmentAuto
	})
	if h.Containment() != ContainmentCgroup {
		t.Skipf("containment here is %s: no cgroup to find the worker in", h.Containment())
	}
	w1 := h.startReady(t, "w1", "m")
	writeRecordFile(t, h, startRecord{ScannedMS: time.Now().UnixMilli()}) // fresh, and without w1
	if _, err := h.Start(t.Context(), h.spec(t, "w1", "m")); !isRunning(err, w1.PID) {
		t.Errorf("Start of w1, missing from the record: got %v, want a RunningError for pid %d", err, w1.PID)
	}
	if !testenv.Alive(w1.PID) {
		t.Fatalf("w1 (pid %d) was killed by a Start of its id", w1.PID)
	}
	h.mustStop(t, "w1", stopGrace)
	h.waitExit(t, w1.PID)
}
