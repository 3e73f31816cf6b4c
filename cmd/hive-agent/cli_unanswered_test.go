//go:build unix

package main

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

// A spawn sent to a stopped (SIGSTOP) agent times out, exit 3, and the CLI
// says the command may still run, with the job id it used and how to find
// out (issue 14 item 14). Once the agent continues it does run it, and
// hive-agent job <that id> shows the outcome.
func TestCLI_SpawnToAStoppedAgentMayStillRun(t *testing.T) {
	s := jsServer(t)
	hive := newHive(t)
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL(), "--jetstream", "on")
	a.waitLog(t, "taking durable intake commands")
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Runs before startBinary's kill, so the agent is never left stopped.
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGCONT) })

	r := runCLI(t, s.ClientURL(), "spawn", "--hive", hive, "--model", "m", "--device", "cpu", "--id", "w1", "--timeout", "2s")
	wantCLI(t, r, exitNoAgent, "no answer in time", "may still run", "hive-agent job ")
	m := regexp.MustCompile(`under job id (\S+) and may still run.*hive-agent job (\S+), or hive-agent ls --hive ` + hive).FindStringSubmatch(r.stderr)
	if m == nil || m[1] != m[2] {
		t.Fatalf("the CLI does not name the job id and how to look it up: %s", r)
	}
	jobID := m[1]

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !testenv.WaitMarked(hive, 1, 30*time.Second) {
		t.Fatalf("the agent never ran the spawn after SIGCONT; output:\n%s", a.out.String())
	}
	job := runCLI(t, s.ClientURL(), "job", jobID, "-f", "--timeout", "30s")
	if job.code != 0 || field(job.stdout, "ok") != "true" || !strings.Contains(job.stdout, `"worker_id":"w1"`) {
		t.Errorf("hive-agent job %s after the agent continued: %s", jobID, job)
	}
	mustCLI(t, s.ClientURL(), "stop", "w1", "--hive", hive)
	// newHive's cleanup checks that no process of the hive is left.
}
