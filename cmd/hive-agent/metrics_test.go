//go:build unix

package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/internal/testenv"
)

// Requests and intake commands to made-up subjects under the hive's
// prefix are counted under kind "unknown": the number of series stays
// the same however many distinct subjects are used (issue 14 item 4: 20,000
// such requests made 420,106 series). The intake gauges are there.
func TestAgent_MetricsSeriesBoundedForUnknownSubjects(t *testing.T) {
	s := jsServer(t)
	hive := newHive(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL(), "--jetstream", "on", "--metrics-listen", addr)
	a.waitLog(t, "serving Prometheus metrics")
	nc := testenv.Connect(t, s)
	url := "http://" + addr + "/metrics"

	unknown := func(i int) {
		t.Helper()
		msg, err := nc.Request("hive."+hive+".worker.made-up-"+strconv.Itoa(i), []byte(`{}`), 10*time.Second)
		if err != nil || !strings.Contains(string(msg.Data), `"unknown_command"`) {
			t.Fatalf("request %d: %v %s", i, err, msg.Data)
		}
	}
	unknown(0)
	before := agentSeries(scrape(t, url))

	const requests, intake = 500, 50
	for i := 1; i <= requests; i++ {
		unknown(i)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range intake {
		if _, err := js.Publish(context.Background(), "hive."+hive+".intake.worker.made-up-"+strconv.Itoa(i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	want := `hive_agent_commands_total{code="unknown_command",kind="unknown"} ` + strconv.Itoa(1+requests+intake)
	body := scrape(t, url)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(body, want) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		body = scrape(t, url)
	}
	if !strings.Contains(body, want) {
		t.Fatalf("scrape lacks %q:\n%s", want, grepMetrics(body))
	}
	if after := agentSeries(body); len(after) != len(before) {
		t.Errorf("hive_agent_ series: %d after %d distinct unknown subjects, %d before; new: %v",
			len(after), requests+intake, len(before), newSeries(before, after))
	}
	for _, want := range []string{"hive_agent_intake_backlog ", "hive_agent_intake_unacknowledged ", `hive_agent_command_duration_seconds_bucket{kind="unknown",le="3600"} `} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	listPIDs(t, nc, hive) // and the agent still serves
}

// A spawn waiting for a worker that never gets ready shows in the
// in-flight gauge and on the worker gauge with its type and device; both
// go back once a delete ended it.
func TestAgent_MetricsInFlightAndWorkers(t *testing.T) {
	s := testenv.NATS(t)
	hive := newHive(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL(), "--metrics-listen", addr)
	a.waitLog(t, "serving Prometheus metrics")
	nc := testenv.Connect(t, s)
	url := "http://" + addr + "/metrics"
	waitScrape := func(want string) string {
		t.Helper()
		body := scrape(t, url)
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(body, want) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			body = scrape(t, url)
		}
		if !strings.Contains(body, want) {
			t.Fatalf("scrape never had %q:\n%s", want, grepMetrics(body))
		}
		return body
	}
	waitScrape("hive_agent_commands_in_flight 0")
	answered := make(chan error, 1)
	go func() {
		_, err := nc.Request("hive."+hive+".worker.spawn",
			[]byte(`{"worker_id":"w1","model_id":"m@no-health","device":"cpu","wait":"ready","wait_timeout_ms":120000}`), 150*time.Second)
		answered <- err
	}()
	waitScrape("hive_agent_commands_in_flight 1")
	// The spawn waits for ready: the worker is loading.
	waitScrape(`hive_agent_workers{device="cpu",state="loading",worker_type="cpu-llm"} 1`)
	request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"w1","grace_ms":0}`, nil)
	if err := <-answered; err != nil {
		t.Fatalf("spawn: %v", err)
	}
	if body := waitScrape("hive_agent_commands_in_flight 0"); strings.Contains(body, "hive_agent_workers{") {
		t.Errorf("a worker left on the gauge after the delete:\n%s", grepMetrics(body))
	}
}

// agentSeries is the names with labels of the hive_agent_ samples of a scrape.
func agentSeries(body string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "hive_agent_") {
			name, _, _ := strings.Cut(l, " ")
			out[name] = true
		}
	}
	return out
}

func newSeries(before, after map[string]bool) []string {
	var out []string
	for s := range after {
		if !before[s] && len(out) < 5 {
			out = append(out, s)
		}
	}
	return out
}
