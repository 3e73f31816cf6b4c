package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// fakeLogs answers hive.<hive>.worker.logs for one worker from a buffer,
// as PROTOCOL v1.1 describes worker.logs. It stands in for the agent only
// until the agent serves worker.logs; every other test uses a real agent.
type fakeLogs struct {
	mu       sync.Mutex
	log      []byte
	gone     bool
	maxBytes int // the fake's default max_bytes, small to make reads come in parts
	offsets  []int64
}

func (f *fakeLogs) write(s string) { f.mu.Lock(); f.log = append(f.log, s...); f.mu.Unlock() }
func (f *fakeLogs) remove()        { f.mu.Lock(); f.gone = true; f.mu.Unlock() }

func (f *fakeLogs) serve(t *testing.T, nc *nats.Conn, hive, worker string) {
	t.Helper()
	sub, err := nc.Subscribe("hive."+hive+".worker.logs", func(m *nats.Msg) {
		var req struct {
			WorkerID string `json:"worker_id"`
			Lines    *int   `json:"lines"`
			Offset   *int64 `json:"offset"`
			MaxBytes int    `json:"max_bytes"`
		}
		reply := map[string]any{"ok": true, "kind": "worker.logs", "hive_id": hive, "job_id": "j", "command_id": "c"}
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := json.Unmarshal(m.Data, &req); err != nil || (req.Lines != nil && req.Offset != nil) {
			reply["ok"], reply["error"] = false, map[string]string{"code": "bad_request", "message": "bad"}
		} else if f.gone || req.WorkerID != worker {
			reply["ok"], reply["error"] = false, map[string]string{"code": "not_found", "message": "no worker " + req.WorkerID}
		} else {
			res := map[string]any{"worker_id": worker, "log_path": "/logs/" + worker + ".log", "size": len(f.log), "truncated": false}
			if req.Offset != nil {
				f.offsets = append(f.offsets, *req.Offset)
				max := req.MaxBytes
				if max == 0 {
					max = f.maxBytes
				}
				chunk := f.log[*req.Offset:min(int(*req.Offset)+max, len(f.log))]
				// Whole lines only: the next read starts after the last newline.
				chunk = chunk[:bytes.LastIndexByte(chunk, '\n')+1]
				res["lines"], res["offset"] = splitLines(chunk), *req.Offset+int64(len(chunk))
			} else {
				all := splitLines(f.log)
				n := 50
				if req.Lines != nil {
					n = *req.Lines
				}
				res["lines"], res["offset"] = all[max(0, len(all)-n):], len(f.log)
			}
			res["running"] = true // until remove: then the agent answers not_found
			reply["result"] = res
		}
		body, _ := json.Marshal(reply)
		m.Respond(body)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	nc.Flush()
}

func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\n")
}

// Follow hands on the last lines, then every line written later, in order
// and once, reading by offset; it returns nil when the worker is gone.
func TestClient_Follow(t *testing.T) {
	s := testenv.NATS(t)
	f := &fakeLogs{maxBytes: 7}
	f.write("a1\na2\na3\n")
	f.serve(t, testenv.Connect(t, s), "fake", "w1")
	c := newClient(t, s, client.WithPollInterval(10*time.Millisecond))

	res, err := c.Logs(ctx(t), "fake", "w1", client.LastLines(2))
	if err != nil || !slices.Equal(res.Lines, []string{"a2", "a3"}) || res.Offset != 9 || res.Size != 9 || res.LogPath != "/logs/w1.log" {
		t.Fatalf("logs: got %+v, %v", res, err)
	}

	var mu sync.Mutex
	var got []string
	seen := func(n int) bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n }
	done := make(chan error, 1)
	go func() {
		done <- c.Follow(ctx(t), "fake", "w1", 2, func(lines []string) {
			mu.Lock()
			got = append(got, lines...)
			mu.Unlock()
		})
	}()
	waitUntil(t, "the first lines", func() bool { return seen(2) })
	f.write("b1\nb2\nbb3\nb4\n") // longer than one read of 7 bytes
	waitUntil(t, "the new lines", func() bool { return seen(6) })
	f.write("c1\n")
	waitUntil(t, "one more line", func() bool { return seen(7) })
	f.remove()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow of a worker that went away: got %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("follow did not end when the worker went away")
	}
	want := []string{"a2", "a3", "b1", "b2", "bb3", "b4", "c1"}
	if !slices.Equal(got, want) {
		t.Errorf("followed lines: got %q, want %q", got, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.offsets) == 0 || f.offsets[0] != 9 || !slices.IsSorted(f.offsets) {
		t.Errorf("offsets asked: got %v, want from 9 on, never backwards", f.offsets)
	}
}

// Follow ends with nil when its context ends, and with the agent's error
// when the worker is unknown from the start.
func TestClient_FollowEnds(t *testing.T) {
	s := testenv.NATS(t)
	f := &fakeLogs{maxBytes: 1024}
	f.serve(t, testenv.Connect(t, s), "fake", "w1")
	c := newClient(t, s, client.WithPollInterval(10*time.Millisecond))

	cctx, cancel := context.WithCancel(ctx(t))
	time.AfterFunc(100*time.Millisecond, cancel)
	if err := c.Follow(cctx, "fake", "w1", 10, func([]string) {}); err != nil {
		t.Errorf("follow until cancelled: got %v, want nil", err)
	}
	err := c.Follow(ctx(t), "fake", "nobody", 10, func([]string) {})
	if !client.IsCode(err, wire.CodeNotFound) {
		t.Errorf("follow of an unknown worker: got %v, want not_found", err)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
