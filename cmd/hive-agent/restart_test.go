//go:build unix

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
)

// lifecycle reads a hive's lifecycle events in order.
type lifecycle struct {
	sub *nats.Subscription
}

func watchLifecycle(t *testing.T, nc *nats.Conn, hive string) *lifecycle {
	t.Helper()
	sub, err := nc.SubscribeSync("hive." + hive + ".events.worker.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return &lifecycle{sub: sub}
}

// next returns the body of the next event of kind (the subject's last
// token) for worker, skipping others.
func (l *lifecycle) next(t *testing.T, kind, worker string) []byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msg, err := l.sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("no %s event of %s: %v", kind, worker, err)
		}
		var ev struct {
			WorkerID string `json:"worker_id"`
		}
		json.Unmarshal(msg.Data, &ev)
		if strings.HasSuffix(msg.Subject, ".worker."+kind) && ev.WorkerID == worker {
			t.Logf("%s %s", msg.Subject, msg.Data)
			return msg.Data
		}
	}
}

// A restart announced by an agent that is then killed (SIGKILL) or stopped
// (SIGTERM) during the backoff is honoured by the next agent: it says so
// (restart_resumed, and its log) and starts the worker again with the same
// id, port and model when the backoff ends, the restart counted. A delete
// sent to the next agent cancels such a restart.
func TestAgent_PendingRestartOutlivesTheAgent(t *testing.T) {
	hive := newHive(t)
	s := testenv.NATS(t)
	nc := testenv.Connect(t, s)
	logDir := t.TempDir()
	args := []string{"--hive-id", hive, "--nats-url", s.ClientURL()}
	ev := watchLifecycle(t, nc, hive)

	a := startBinary(t, logDir, append(args, "--restart-backoff", "3s")...)
	a.waitLog(t, "serving worker commands")
	// Ports of their own, not the range's: while w1 waits for its restart
	// its port is free, and the agents of other tests on this machine
	// would take the range's lowest free port.
	var sp commands.SpawnResult
	request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"w1","model_id":"m","device":"cpu","restart":"on-failure","max_restarts":2,"port":`+strconv.Itoa(freePort(t))+`}`, &sp)
	syscall.Kill(sp.PID, syscall.SIGKILL)
	var ex consumer.ExitedEvent
	json.Unmarshal(ev.next(t, "exited", "w1"), &ex)
	if ex.Restart != 1 || ex.RestartInMS != 3000 {
		t.Fatalf("exited event %+v: want restart 1 in 3000 ms", ex)
	}
	a.stop(t, syscall.SIGKILL)

	// The next agent backs off for a minute itself, so that w2's restart
	// below is still pending when the third agent gets its delete.
	b := startBinary(t, logDir, append(args, "--restart-backoff", "60s")...)
	var res consumer.PendingRestartEvent
	json.Unmarshal(ev.next(t, "restart_resumed", "w1"), &res)
	if res.Restart != 1 || res.Port != sp.Port || res.ModelID != "m" || res.RestartInMS == nil || *res.RestartInMS > 3000 {
		t.Errorf("restart_resumed %+v: want restart 1 of w1 on port %d within 3 s", res, sp.Port)
	}
	var st consumer.StartedEvent
	json.Unmarshal(ev.next(t, "started", "w1"), &st)
	if st.Restart != 1 || st.Port != sp.Port || st.ModelID != "m" || st.PID == sp.PID {
		t.Errorf("started event %+v: want w1 restarted (restart 1) on port %d", st, sp.Port)
	}
	b.waitLog(t, "resuming a pending restart left by an earlier agent")
	for _, line := range strings.Split(b.out.String(), "\n") {
		if strings.Contains(line, "pending restart") {
			t.Log(line)
		}
	}
	if got := listPIDs(t, nc, hive); got["w1"] != st.PID {
		t.Errorf("list %v: want w1 as pid %d", got, st.PID)
	}

	request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"w2","model_id":"m","device":"cpu","restart":"on-failure","port":`+strconv.Itoa(freePort(t))+`}`, &sp)
	syscall.Kill(sp.PID, syscall.SIGKILL)
	json.Unmarshal(ev.next(t, "exited", "w2"), &ex)
	if ex.Restart != 1 || ex.RestartInMS != 60000 {
		t.Fatalf("exited event %+v: want restart 1 in 60000 ms", ex)
	}
	if err := b.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(logDir, hive, "restarts", "w2.json")); err != nil {
		t.Errorf("a clean stop dropped the pending restart of w2: %v", err)
	}
	// A record the next agent cannot use is abandoned, and said so.
	if err := os.WriteFile(filepath.Join(logDir, hive, "restarts", "w3.json"), []byte(`{"worker_id":"w3"`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startBinary(t, logDir, args...)
	ev.next(t, "restart_resumed", "w2")
	var ab consumer.PendingRestartEvent
	json.Unmarshal(ev.next(t, "restart_abandoned", "w3"), &ab)
	if ab.Reason == "" {
		t.Errorf("restart_abandoned %+v: want a reason", ab)
	}
	c.waitLog(t, "abandoning a pending restart left by an earlier agent")
	c.waitLog(t, "serving worker commands")
	var del map[string]any
	request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"w2"}`, &del)
	if _, has := del["pid"]; has || del["restart_cancelled"] != true {
		t.Errorf("delete of w2: %v, want restart_cancelled and no pid", del)
	}
	if _, err := os.Stat(filepath.Join(logDir, hive, "restarts", "w2.json")); !os.IsNotExist(err) {
		t.Errorf("restart record of w2 after its delete: %v", err)
	}
	var d commands.DeleteResult
	request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"w1"}`, &d)
	if d.PID != st.PID || d.RestartCancelled {
		t.Errorf("delete of w1: %+v, want pid %d", d, st.PID)
	}
}
