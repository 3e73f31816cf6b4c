package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// spawnJSON runs `hive-agent spawn ARGS --json` and returns the worker it
// started.
func spawnJSON(t *testing.T, url string, args ...string) client.SpawnResult {
	t.Helper()
	r := mustCLI(t, url, append(append([]string{"spawn"}, args...), "--json")...)
	var sp client.Reply[client.SpawnResult]
	if err := json.Unmarshal([]byte(r.stdout), &sp); err != nil || sp.Result.PID == 0 {
		t.Fatalf("spawn --json: %v: %s", err, r)
	}
	return sp.Result
}

// follower is a running `logs -f`.
type follower struct {
	*proc
	stdout, stderr *syncBuffer
}

func startFollower(t *testing.T, url string, args ...string) *follower {
	t.Helper()
	cmd := cliCommand(t, url, args...)
	f := &follower{proc: &proc{cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = f.stdout, f.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.err = cmd.Wait(); close(f.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-f.exited
	})
	return f
}

// waitOut waits until the follower printed want on stdout.
func (f *follower) waitOut(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(f.stdout.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("logs -f never printed %q; stdout:\n%s\nstderr:\n%s", want, f.stdout, f.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logs -f prints the last lines, then what is written to the log after
// them, until Ctrl-C (exit 0) or the worker exits (exit 0, said on stderr).
// It needs the agent's worker.logs (protocol v1.1), and skips on an agent
// that answers unknown_command for it.
func TestCLI_LogsFollow(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	startAgent(t, s, hive)
	url := s.ClientURL()
	// Ready: the worker has written all its start lines.
	sp := spawnJSON(t, url, "--hive", hive, "--model", "m@lines=3", "--device", "cpu", "--id", "w1", "--wait", "ready")

	nc := testenv.Connect(t, s)
	if _, err := client.New(nc).Logs(t.Context(), hive, "w1", client.LastLines(1)); client.IsCode(err, wire.CodeUnknownCommand) {
		t.Skipf("the agent has no worker.logs yet (%v); this test runs once it has", err)
	} else if err != nil {
		t.Fatalf("worker.logs: %v", err)
	}
	// The test worker's log ends with its three lines and where it listens.
	r := mustCLI(t, url, "logs", "w1", "--hive", hive, "-n", "2")
	if lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n"); len(lines) != 2 || lines[0] != "line 3" ||
		!strings.HasPrefix(lines[1], "testworker: listening on") {
		t.Errorf("logs -n 2: %s", r)
	}

	first := startFollower(t, url, "logs", "w1", "--hive", hive, "-f", "-n", "1")
	second := startFollower(t, url, "logs", "-f", "--hive", hive, "w1")
	stamped := startFollower(t, url, "logs", "-f", "--timestamps", "-n", "1", "--hive", hive, "w1")
	first.waitOut(t, "testworker: listening on")
	second.waitOut(t, "line 3")
	stamped.waitOut(t, "testworker: listening on")
	log, err := os.OpenFile(sp.LogPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	log.WriteString("written after the follow began\n")
	log.Close()
	first.waitOut(t, "written after the follow began")
	second.waitOut(t, "written after the follow began")
	stamped.waitOut(t, "written after the follow began")
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) `
	if !regexp.MustCompile(`^` + stamp + `testworker: listening on \S+\n` + stamp + `written after the follow began\n$`).MatchString(stamped.stdout.String()) {
		t.Errorf("logs -f --timestamps: %q", stamped.stdout)
	}
	wantCLI(t, runCLI(t, url, "logs", "w1", "--hive", hive, "--timestamps"), exitUsage, "--timestamps needs --follow")
	if strings.Contains(first.stdout.String(), "line 3") {
		t.Errorf("logs -f -n 1 printed more than the last line first: %s", first.stdout)
	}

	// Ctrl-C is the normal end of a follow.
	if err := second.stop(t, syscall.SIGINT); err != nil {
		t.Errorf("logs -f after Ctrl-C: %v, want exit 0; stderr: %s", err, second.stderr)
	}
	// The worker's exit ends the other.
	mustCLI(t, url, "stop", "w1", "--hive", hive)
	if code := first.wait(t); code != 0 || !strings.Contains(first.stderr.String(), "is gone") {
		t.Errorf("logs -f after the worker stopped: exit %d, want 0; stderr: %s", code, first.stderr)
	}
}
