//go:build unix

package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
)

// waitCheckpoint waits until the agent's index beside the log at path
// holds a checkpoint of the log's current size, and returns a time at or
// after that checkpoint.
func waitCheckpoint(t *testing.T, path string) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path + ".idx")
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if ms, size, ok := strings.Cut(lines[len(lines)-1], " "); ok && size == strconv.FormatInt(fi.Size(), 10) {
			// A checkpoint's time is rounded up to the millisecond: wait
			// until now is at or past it, so a read since now starts there.
			at, err := strconv.ParseInt(ms, 10, 64)
			if err != nil {
				t.Fatalf("checkpoint %q: %v", lines[len(lines)-1], err)
			}
			for time.Now().UnixMilli() < at {
				time.Sleep(time.Millisecond)
			}
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d in %s.idx: %q", fi.Size(), path, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func appendLog(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// logs --since returns what was written after a point and not what was
// written before it (the agent's checkpoints of the log size say where),
// with and without -f; a point before every checkpoint reads the whole log.
func TestCLI_LogsSince(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	startAgent(t, s, hive)
	url := s.ClientURL()
	log := spawnJSON(t, url, "--hive", hive, "--model", "m@lines=3", "--device", "cpu", "--id", "w1", "--wait", "ready").LogPath

	mid := waitCheckpoint(t, log)
	appendLog(t, log, "after mid 1\nafter mid 2\n")
	r := mustCLI(t, url, "logs", "w1", "--hive", hive, "--since", mid.Format(time.RFC3339Nano))
	if got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n"); !slices.Equal(got, []string{"after mid 1", "after mid 2"}) {
		t.Errorf("logs --since mid: got %q, want only the lines written after it", got)
	}
	r = mustCLI(t, url, "logs", "w1", "--hive", hive, "--since", "1h")
	if !strings.Contains(r.stdout, "\nline 1\nline 2\nline 3\n") || !strings.HasSuffix(r.stdout, "after mid 2\n") {
		t.Errorf("logs --since 1h: got %q, want the whole log", r.stdout)
	}

	late := waitCheckpoint(t, log)
	f := startFollower(t, url, "logs", "w1", "--hive", hive, "-f", "--since", late.Format(time.RFC3339Nano))
	appendLog(t, log, "after late\n")
	f.waitOut(t, "after late")
	appendLog(t, log, "followed\n")
	f.waitOut(t, "followed")
	if got := f.stdout.String(); got != "after late\nfollowed\n" {
		t.Errorf("logs -f --since late: got %q, want only what came after", got)
	}

	// The client's wire read: since_ms continues from the returned offset.
	nc := testenv.Connect(t, s)
	c := client.New(nc)
	res, err := c.Logs(t.Context(), hive, "w1", client.Since(late))
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(log)
	if !slices.Equal(res.Lines, []string{"after late", "followed"}) || res.Offset != fi.Size() {
		t.Errorf("Since(late): got %+v, want the two late lines and offset %d", res, fi.Size())
	}

	wantCLI(t, runCLI(t, url, "logs", "w1", "--hive", hive, "--since", "yesterday"), exitUsage, `--since "yesterday"`)
	wantCLI(t, runCLI(t, url, "logs", "w1", "--hive", hive, "--since=-5m"), exitUsage, `--since "-5m"`)
	mustCLI(t, url, "logs", "w1", "--hive", hive, "-n", "1") // still serves
	mustCLI(t, url, "stop", "w1", "--hive", hive)
}

// The checkpoints survive an agent restart (a read since a point before it
// still starts there), and a new spawn of the worker id starts a new index
// with its new log.
func TestCLI_LogsSinceAcrossRestartAndRespawn(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	logDir := t.TempDir()
	a := startBinary(t, logDir, "--hive-id", hive, "--nats-url", s.ClientURL())
	a.waitLog(t, "serving worker commands")
	url := s.ClientURL()
	log := spawnJSON(t, url, "--hive", hive, "--model", "m@lines=3", "--device", "cpu", "--id", "w1", "--wait", "ready").LogPath
	mid := waitCheckpoint(t, log).Format(time.RFC3339Nano)
	appendLog(t, log, "written after mid\n")
	if err := a.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	appendLog(t, log, "written while no agent ran\n")
	b := startBinary(t, logDir, "--hive-id", hive, "--nats-url", s.ClientURL())
	b.waitLog(t, "found running workers of this hive from an earlier run")
	r := mustCLI(t, url, "logs", "w1", "--hive", hive, "--since", mid)
	if r.stdout != "written after mid\nwritten while no agent ran\n" {
		idx, _ := os.ReadFile(log + ".idx")
		t.Errorf("logs --since mid (%s) after a restart: got %q, want the two lines written after mid; index:\n%s", mid, r.stdout, idx)
	}

	mustCLI(t, url, "stop", "w1", "--hive", hive)
	mustCLI(t, url, "spawn", "--hive", hive, "--model", "m@lines=3", "--device", "cpu", "--id", "w1", "--wait", "ready")
	r = mustCLI(t, url, "logs", "w1", "--hive", hive, "--since", mid)
	if !strings.Contains(r.stdout, "\nline 1\nline 2\nline 3\n") || strings.Contains(r.stdout, "written after mid") {
		t.Errorf("logs --since mid of the new log: got %q, want the whole new log (no checkpoint of it is that old)", r.stdout)
	}
	mustCLI(t, url, "stop", "w1", "--hive", hive)
}
