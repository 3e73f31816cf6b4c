package main

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// jsServer is an embedded NATS server with JetStream in a fresh directory.
func jsServer(t *testing.T) *server.Server {
	t.Helper()
	return startServer(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
}

// The agent is SIGKILLed while a spawn from the intake waits for the
// worker to be ready; the restarted agent completes the command with the
// one worker the first started, and one result.
func TestAgent_IntakeSpawnSurvivesSIGKILL(t *testing.T) {
	s := jsServer(t)
	hive := newHive(t)
	logDir := t.TempDir()
	args := []string{"--hive-id", hive, "--nats-url", s.ClientURL(), "--intake-ack-wait", "2s", "--jetstream", "on"}
	a := startBinary(t, logDir, args...)
	a.waitLog(t, "taking durable intake commands")

	nc := testenv.Connect(t, s)
	narr := make(chan *nats.Msg, 64)
	sub, _ := nc.ChanSubscribe("job.k1.narration", narr)
	defer sub.Unsubscribe()
	nc.Flush()
	js, _ := jetstream.New(nc)
	body := `{"job_id":"k1","worker_id":"w1","model_id":"m@ready-after=3s","device":"cpu","wait":"ready","wait_timeout_ms":60000}`
	if _, err := js.Publish(context.Background(), "hive."+hive+".intake.worker.spawn", []byte(body), jetstream.WithMsgID("k1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for waiting := false; !waiting; {
		select {
		case m := <-narr:
			waiting = strings.Contains(string(m.Data), `"worker_waiting_ready"`)
		case <-deadline:
			t.Fatal("the spawn never started waiting for ready")
		}
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited

	b := startBinary(t, logDir, args...)
	b.waitLog(t, "taking durable intake commands")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := client.New(nc)
	r, err := cl.WatchJob(ctx, "k1", nil)
	if err != nil {
		t.Fatalf("watch k1: %v", err)
	}
	var res wire.SpawnResult
	json.Unmarshal(r.Result, &res)
	if !res.Existing || res.WorkerID != "w1" || r.CommandID != "k1" {
		t.Fatalf("got %+v %+v, want the worker the first agent started (existing)", r, res)
	}
	if pids := listPIDs(t, nc, hive); len(pids) != 1 || pids["w1"] != res.PID {
		t.Fatalf("got workers %v, want only w1 (pid %d)", pids, res.PID)
	}
	evs, stored, err := cl.StoredJob(ctx, "k1")
	if err != nil || stored == nil {
		t.Fatalf("stored job: %v", err)
	}
	results := 0
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("stored event %d has seq %d: narration numbering restarted", i, e.Seq)
		}
		if e.End() {
			results++
		}
	}
	if results != 1 {
		t.Errorf("got %d end events, want 1 (the killed run never ended)", results)
	}
	request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"w1","grace_ms":1000}`, nil)
}

// --jetstream off leaves a JetStream server untouched; a server without
// JetStream leaves request/reply as it was, and --jetstream on refuses it.
func TestAgent_JetStreamOffAndMissing(t *testing.T) {
	s := jsServer(t)
	hive := newHive(t)
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL(), "--jetstream", "off")
	a.waitLog(t, "serving worker commands")
	nc := testenv.Connect(t, s)
	listPIDs(t, nc, hive)
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(context.Background(), "HIVE_INTAKE"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("--jetstream off: stream lookup got %v, want not found", err)
	}
	a.stop(t, syscall.SIGTERM)

	plain := testenv.NATS(t)
	b := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", plain.ClientURL())
	b.waitLog(t, "durable intake and stored results are off")
	listPIDs(t, testenv.Connect(t, plain), hive)
	b.stop(t, syscall.SIGTERM)

	c := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", plain.ClientURL(), "--jetstream", "on")
	if code := c.wait(t); code != exitFailure {
		t.Fatalf("--jetstream on without JetStream: exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(c.out.String(), "JetStream is not available") {
		t.Fatalf("output does not say why:\n%s", c.out.String())
	}
}

// The embedded server has JetStream, stored under --jetstream-dir.
func TestAgent_EmbeddedServerHasIntake(t *testing.T) {
	hive := newHive(t)
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-listen", addr, "--jetstream-dir", dir)
	a.waitLog(t, "taking durable intake commands")
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(context.Background(), "hive."+hive+".intake.worker.list", []byte(`{"job_id":"e1"}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.New(nc).WatchJob(ctx, "e1", nil); err != nil {
		t.Fatalf("watch e1: %v", err)
	}
	if err := a.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if !strings.Contains(a.out.String(), dir) {
		t.Errorf("the log does not name the JetStream directory %s", dir)
	}
}
