package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	return string(b)
}

func TestMetrics_CountsAndGauges(t *testing.T) {
	var connected atomic.Bool
	connected.Store(true)
	m := New(Config{
		Workers:        func() int { return 3 },
		NATSConnected:  connected.Load,
		NATSReconnects: func() uint64 { return 2 },
	})
	m.CommandDone("worker.spawn", "ok", 2*time.Millisecond)
	m.CommandDone("worker.spawn", "ok", 3*time.Millisecond)
	m.CommandDone("worker.delete", "not_found", time.Millisecond)
	m.WorkerExited(CauseSignaled)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	body := scrape(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		`hive_agent_commands_total{code="ok",kind="worker.spawn"} 2`,
		`hive_agent_commands_total{code="not_found",kind="worker.delete"} 1`,
		`hive_agent_command_duration_seconds_count{kind="worker.spawn"} 2`,
		`hive_agent_worker_exits_total{cause="signaled"} 1`,
		"hive_agent_workers 3",
		"hive_agent_nats_connected 1",
		"hive_agent_nats_reconnects_total 2",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	connected.Store(false)
	if body := scrape(t, "http://"+addr+"/metrics"); !strings.Contains(body, "hive_agent_nats_connected 0") {
		t.Errorf("after disconnect: want hive_agent_nats_connected 0")
	}
}

func TestMetrics_NilRecordsNothing(t *testing.T) {
	var m *Metrics
	m.CommandDone("worker.list", "ok", time.Millisecond) // must not panic
	m.WorkerExited(CauseFailed)
}

func TestMetrics_ServeRefusesATakenAddress(t *testing.T) {
	m := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}).Serve(ctx, addr); err == nil {
		t.Errorf("second server on %s: no error", addr)
	}
}
