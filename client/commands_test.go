package client_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// A spawn streams its narration, complete and in order, before it returns;
// list, get and delete then see the worker, and delete narrates too.
func TestClient_SpawnListGetDelete(t *testing.T) {
	s := testenv.NATS(t)
	hive := startAgent(t, s)
	c := newClient(t, s)

	var spawnEvents recorder
	r, err := c.Spawn(ctx(t), hive, client.SpawnRequest{WorkerID: "w1", ModelID: "test/m@lines=3", Device: "cpu"}, spawnEvents.add)
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	// Everything onEvent got was delivered before Spawn returned.
	checkOrdered(t, spawnEvents.events, r.JobID, r.CommandID, true)
	want := []string{"worker_spawn_start", "worker_binary_resolved", "worker_process_started", "worker_alive", "worker_spawned"}
	if got := spawnEvents.actions(); !slices.Equal(got, want) {
		t.Errorf("spawn actions: got %v, want %v", got, want)
	}
	if !r.OK || r.Kind != "worker.spawn" || r.HiveID != hive || r.JobID == "" || r.CommandID == "" || r.JobID == r.CommandID {
		t.Errorf("spawn reply envelope: got %+v", r)
	}
	sp := r.Result
	if sp.WorkerID != "w1" || sp.Device != "cpu" || sp.WorkerType != "cpu-llm" || sp.Wait != "alive" ||
		sp.Port < 9800 || sp.Port > 9899 || sp.StartedAt.IsZero() || sp.Existing {
		t.Errorf("spawn result: got %+v", sp)
	}
	if !testenv.Alive(sp.PID) {
		t.Fatalf("worker pid %d is not running", sp.PID)
	}

	ws, err := c.List(ctx(t), hive)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(ws) != 1 || ws[0].HiveID != hive || ws[0].WorkerID != "w1" || ws[0].PID != sp.PID || ws[0].Port != sp.Port ||
		ws[0].ModelID != "test/m@lines=3" || ws[0].JobID != r.JobID || ws[0].RSSBytes == 0 {
		t.Errorf("list: got %+v, want w1 with pid %d", ws, sp.PID)
	}

	var d client.WorkerDetail
	deadline := time.Now().Add(20 * time.Second)
	for { // the worker writes its lines as it starts; wait for them, bounded
		if d, err = c.Get(ctx(t), hive, "w1", 3); err != nil {
			t.Fatalf("get: %v", err)
		}
		if len(d.LogTail) == 3 && strings.HasPrefix(d.LogTail[2], "testworker: listening") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.HiveID != hive || d.WorkerID != "w1" || d.PID != sp.PID || len(d.LogTail) != 3 || !slices.Equal(d.LogTail[:2], []string{"line 2", "line 3"}) {
		t.Errorf("get: got %+v with tail %q, want w1 with tail [line 2, line 3, testworker: listening…]", d.WorkerInfo, d.LogTail)
	}

	var delEvents recorder
	del, err := c.Delete(ctx(t), hive, "w1", 2*time.Second, delEvents.add)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if del.Result.WorkerID != "w1" || del.Result.PID != sp.PID || del.Result.Signal != "SIGTERM" || del.Kind != "worker.delete" {
		t.Errorf("delete: got %+v", del)
	}
	checkOrdered(t, delEvents.events, del.JobID, del.CommandID, true)
	if got, want := delEvents.actions(), []string{"worker_delete_start", "worker_signal_sent", "worker_deleted"}; !slices.Equal(got, want) {
		t.Errorf("delete actions: got %v, want %v", got, want)
	}
	if !testenv.WaitGone(sp.PID, 5*time.Second) {
		t.Errorf("worker %d still running after delete", sp.PID)
	}
	if ws, err := c.List(ctx(t), hive); err != nil || len(ws) != 0 {
		t.Errorf("list after delete: got %+v, %v; want no workers", ws, err)
	}
}

// A caller's own job and command ids are used as given, and a resend of
// the same command answers with the running worker.
func TestClient_SpawnWithOwnIDsAndResend(t *testing.T) {
	s := testenv.NATS(t)
	hive := startAgent(t, s)
	c := newClient(t, s)
	req := client.SpawnRequest{JobID: "job-own", CommandID: "cmd-own", WorkerID: "w1", ModelID: "m", Device: "cpu", Wait: "exec"}
	var first recorder
	r, err := c.Spawn(ctx(t), hive, req, first.add)
	if err != nil {
		t.Fatalf("spawn: %v", err)
	}
	if r.JobID != "job-own" || r.CommandID != "cmd-own" || r.Result.Wait != "exec" {
		t.Errorf("reply: got %+v", r)
	}
	checkOrdered(t, first.events, "job-own", "cmd-own", true)

	var again recorder
	r2, err := c.Spawn(ctx(t), hive, req, again.add)
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	if !r2.Result.Existing || r2.Result.PID != r.Result.PID {
		t.Errorf("resend: got %+v, want existing worker pid %d", r2.Result, r.Result.PID)
	}
	// The job's sequence goes on from the first command's events.
	if len(again.events) < 2 || again.events[0].Action != "worker_spawn_start" || !again.events[len(again.events)-1].End() {
		t.Errorf("resend narration: got %v", again.actions())
	}
	for i := 1; i < len(again.events); i++ {
		if again.events[i].Seq <= again.events[i-1].Seq {
			t.Errorf("resend narration out of order: %d after %d", again.events[i].Seq, again.events[i-1].Seq)
		}
	}
	if _, err := c.Delete(ctx(t), hive, "w1", 0, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// Every refusal comes back as *AgentError with its exact code and field,
// with its narration ended by a failed end event, and the agent goes on
// serving.
func TestClient_AgentErrors(t *testing.T) {
	s := testenv.NATS(t)
	hive := startAgent(t, s)
	c := newClient(t, s)
	if _, err := c.Spawn(ctx(t), hive, client.SpawnRequest{WorkerID: "w1", ModelID: "m", Device: "cpu", Wait: "exec"}, nil); err != nil {
		t.Fatalf("spawn w1: %v", err)
	}
	tests := []struct {
		name        string
		call        func(*recorder) error
		code, field string
	}{
		{"bad device", func(r *recorder) error {
			_, err := c.Spawn(ctx(t), hive, client.SpawnRequest{ModelID: "m", Device: "tpu"}, r.add)
			return err
		}, wire.CodeBadRequest, "device"},
		{"missing model", func(r *recorder) error {
			_, err := c.Spawn(ctx(t), hive, client.SpawnRequest{Device: "cpu"}, r.add)
			return err
		}, wire.CodeBadRequest, "model_id"},
		{"worker id taken", func(r *recorder) error {
			_, err := c.Spawn(ctx(t), hive, client.SpawnRequest{WorkerID: "w1", ModelID: "m", Device: "cpu"}, r.add)
			return err
		}, wire.CodeConflict, ""},
		{"worker crashes at start", func(r *recorder) error {
			_, err := c.Spawn(ctx(t), hive, client.SpawnRequest{WorkerID: "w2", ModelID: "m@crash", Device: "cpu"}, r.add)
			return err
		}, wire.CodeWorkerExited, ""},
		{"delete unknown worker", func(r *recorder) error {
			_, err := c.Delete(ctx(t), hive, "nobody", -1, r.add)
			return err
		}, wire.CodeNotFound, ""},
		{"grace too long", func(r *recorder) error {
			_, err := c.Delete(ctx(t), hive, "w1", time.Hour, r.add)
			return err
		}, wire.CodeBadRequest, "grace_ms"},
		{"get unknown worker", func(*recorder) error { _, err := c.Get(ctx(t), hive, "nobody", -1); return err }, wire.CodeNotFound, ""},
		{"get too many lines", func(*recorder) error { _, err := c.Get(ctx(t), hive, "w1", 5000); return err }, wire.CodeBadRequest, "log_lines"},
		{"get invalid worker id", func(*recorder) error { _, err := c.Get(ctx(t), hive, "a.b", -1); return err }, wire.CodeBadRequest, "worker_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			err := tt.call(&rec)
			var ae *client.AgentError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v (%T), want *client.AgentError %s", err, err, tt.code)
			}
			if ae.Code != tt.code || ae.Field != tt.field || ae.Message == "" {
				t.Errorf("got code %q field %q (%s), want code %q field %q", ae.Code, ae.Field, ae.Message, tt.code, tt.field)
			}
			if !client.IsCode(err, tt.code) || errors.Is(err, client.ErrNoAgent) {
				t.Errorf("IsCode(%q) false or ErrNoAgent true for %v", tt.code, err)
			}
			if len(rec.events) > 0 {
				end := rec.events[len(rec.events)-1]
				if !end.End() || *end.OK || end.Error == nil || end.Error.Code != tt.code {
					t.Errorf("last event: got %+v, want a failed end event with code %s", end, tt.code)
				}
			}
			if _, err := c.List(ctx(t), hive); err != nil {
				t.Errorf("agent stopped serving after the error: %v", err)
			}
		})
	}
	if _, err := c.Delete(ctx(t), hive, "w1", 0, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// Ids that would change a subject are refused before anything is sent.
func TestClient_InvalidIDsRefusedLocally(t *testing.T) {
	s := testenv.NATS(t)
	hive := startAgent(t, s)
	c := newClient(t, s)
	for name, call := range map[string]func() error{
		"hive with a dot": func() error { _, err := c.List(ctx(t), "a.b"); return err },
		"wildcard hive":   func() error { _, err := c.Get(ctx(t), ">", "w1", -1); return err },
		"job id with a wildcard": func() error {
			_, err := c.Spawn(ctx(t), hive, client.SpawnRequest{JobID: "*", ModelID: "m", Device: "cpu"}, nil)
			return err
		},
		"command id with a space": func() error {
			_, err := c.Spawn(ctx(t), hive, client.SpawnRequest{CommandID: "a b", ModelID: "m", Device: "cpu"}, nil)
			return err
		},
		"lines and offset": func() error {
			_, err := c.Logs(ctx(t), hive, "w1", client.LogsRequest{Lines: new(int), Offset: new(int64)})
			return err
		},
	} {
		if err := call(); !errors.Is(err, client.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if ws, err := c.List(ctx(t), hive); err != nil || len(ws) != 0 {
		t.Errorf("list: got %v, %v; want nothing spawned", ws, err)
	}
}
