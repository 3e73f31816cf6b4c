package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A log reader that goes away (`hive-agent 2>&1 | head -c 2000`, a
// restarted log shipper) does not kill the agent: it keeps serving, and
// still stops gracefully on SIGTERM. Seen before the fix: exit 141
// (SIGPIPE) at the first log line after the reader closed.
func TestAgent_SurvivesClosedLogPipe(t *testing.T) {
	hive := newHive(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(agentBin, "--worker-dir", workerDir, "--log-dir", t.TempDir(), "--port-range", "9700-9799",
		"--log-format", "text", "--hive-id", hive, "--nats-listen", addr, "--jetstream", "off")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	lines := bufio.NewScanner(r)
	for lines.Scan() && !strings.Contains(lines.Text(), "serving worker commands") {
	}
	r.Close() // the reader goes away; every later log line hits a closed pipe

	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := range 5 { // each command logs a line
		if _, err := nc.Request("hive."+hive+".worker.list", nil, 10*time.Second); err != nil {
			t.Fatalf("list %d after the log pipe closed: %v", i, err)
		}
	}
	request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"w","model_id":"m","device":"cpu"}`, nil)
	request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"w","grace_ms":0}`, nil)
	select {
	case err := <-exited:
		t.Fatalf("the agent died after its log pipe closed: %v", err)
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("stop after the log pipe closed: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop on SIGTERM")
	}
}

// SIGHUP (a closed terminal) stops the agent as SIGTERM does: no new
// commands, those in flight finished, exit 0. Seen before the fix: exit
// 129 at once, with no stop lines.
func TestAgent_SIGHUPStopsGracefully(t *testing.T) {
	hive := newHive(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-listen", addr, "--jetstream", "off")
	a.waitLog(t, "serving worker commands")
	if err := a.stop(t, syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: exit %v, want 0; output:\n%s", err, a.out.String())
	}
	out := a.out.String()
	for _, want := range []string{`msg="stopping: no new commands; finishing those in flight; workers keep running (a second signal stops at once)" wait=10s reason="hangup signal received"`,
		`msg="hive-agent stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
