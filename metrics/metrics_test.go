package metrics

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
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
	var backlog atomic.Bool
	m := New(Config{
		Kinds:   []string{"worker.spawn", "worker.delete"},
		Version: "v1.2.3",
		Workers: func() []Worker {
			return []Worker{{Type: "cpu-llm", Device: "cpu"}, {Type: "cpu-llm", Device: "cpu"}, {Type: "cuda-llm", Device: "cuda:1", State: "loading"}}
		},
		InFlight:       func() int { return 4 },
		IntakeBacklog:  func() (uint64, uint64, bool) { return 7, 2, backlog.Load() },
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
		`hive_agent_workers{device="cpu",state="running",worker_type="cpu-llm"} 2`,
		`hive_agent_workers{device="cuda:1",state="loading",worker_type="cuda-llm"} 1`,
		`hive_agent_build_info{go_version="` + runtime.Version() + `",version="v1.2.3"} 1`,
		"hive_agent_commands_in_flight 4",
		`hive_agent_command_duration_seconds_bucket{kind="worker.spawn",le="3600"} 2`,
		"hive_agent_nats_connected 1",
		"hive_agent_nats_reconnects_total 2",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, "hive_agent_intake_") {
		t.Errorf("intake not running, yet the scrape has intake metrics")
	}
	connected.Store(false)
	backlog.Store(true)
	body = scrape(t, "http://"+addr+"/metrics")
	for _, want := range []string{"hive_agent_nats_connected 0", "hive_agent_intake_backlog 7", "hive_agent_intake_unacknowledged 2"} {
		if !strings.Contains(body, want) {
			t.Errorf("second scrape lacks %q", want)
		}
	}
}

// Kinds outside Config.Kinds share one label value, so requests to made-up
// subjects cannot grow the number of series (issue 14 item 4).
func TestMetrics_UnknownKindsShareOneSeries(t *testing.T) {
	m := New(Config{Kinds: []string{"worker.list"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.CommandDone("worker.list", "ok", time.Millisecond)
	m.CommandDone("worker.nope0", "unknown_command", time.Millisecond)
	before := countSeries(scrape(t, "http://"+addr+"/metrics"), "hive_agent_")
	for i := 1; i <= 1000; i++ {
		m.CommandDone("worker.nope"+strconv.Itoa(i), "unknown_command", time.Millisecond)
	}
	body := scrape(t, "http://"+addr+"/metrics")
	if got := countSeries(body, "hive_agent_"); got != before {
		t.Errorf("series after 1000 more unknown kinds: %d, want %d as before", got, before)
	}
	if want := `hive_agent_commands_total{code="unknown_command",kind="unknown"} 1001`; !strings.Contains(body, want) {
		t.Errorf("scrape lacks %q", want)
	}
}

// countSeries counts the sample lines of metrics whose name starts with prefix.
func countSeries(body, prefix string) int {
	n := 0
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// An address without a host listens on every interface: the log says so
// and names them; one with a host says nothing.
func TestMetrics_ServeWarnsAboutEveryInterface(t *testing.T) {
	for _, tc := range []struct {
		addr string
		warn bool
	}{{":0", true}, {"0.0.0.0:0", true}, {"127.0.0.1:0", false}} {
		t.Run(tc.addr, func(t *testing.T) {
			var buf bytes.Buffer
			m := New(Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if _, err := m.Serve(ctx, tc.addr); err != nil {
				t.Fatal(err)
			}
			log := buf.String()
			warned := strings.Contains(log, "level=WARN") && strings.Contains(log, "every interface") && strings.Contains(log, "lo 127.0.0.1")
			if warned != tc.warn {
				t.Errorf("warned %v, want %v; log:\n%s", warned, tc.warn, log)
			}
		})
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
