package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
)

// A SIGKILLed agent is listed by `hives` as stale, with the time its last
// heartbeat was stored, beside the agent that still answers; outside the
// --stale window it is not listed; without HIVE_EVENTS a note says that
// only answering agents are shown.
func TestCLI_HivesShowsAStoppedAgentStale(t *testing.T) {
	s := jsServer(t)
	url := s.ClientURL()
	live, gone := newHive(t), newHive(t)
	startAgent(t, s, live)
	g := startAgent(t, s, gone)
	if r := mustCLI(t, url, "hives"); strings.Contains(r.stdout, "STALE") || len(hiveRows(t, r.stdout)) != 2 {
		t.Fatalf("hives with both answering: %s", r)
	}
	stopped := time.Now()
	g.stop(t, syscall.SIGKILL)
	var r cliRun
	for {
		r = runCLI(t, url, "hives")
		if strings.Contains(r.stdout, "STALE") || time.Since(stopped) > 30*time.Second {
			break
		}
	}
	took := time.Since(stopped)
	t.Logf("(HIVE_EVENTS made by the agents) the stopped agent was listed stale %s after its SIGKILL", took.Round(time.Millisecond))
	rows := hiveRows(t, r.stdout)
	if r.code != 0 || len(rows) != 2 || !strings.HasPrefix(rows[0], gone+" ") && !strings.HasPrefix(rows[1], gone+" ") {
		t.Fatalf("hives within 30 s of the SIGKILL: %s", r)
	}
	for _, row := range rows {
		if strings.HasPrefix(row, gone+" ") != strings.Contains(row, "STALE: last seen ") {
			t.Errorf("row %q: only hive %s is stale: %s", row, gone, r)
		}
	}
	r = mustCLI(t, url, "hives", "--json")
	var out struct{ Hives []client.HiveInfo }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	for _, h := range out.Hives {
		if (h.HiveID == gone) != h.Stale || h.Stale && (h.LastSeen.After(stopped) || time.Since(h.LastSeen) > time.Minute) {
			t.Errorf("hives --json entry %+v", h)
		}
	}
	// events leaves the heartbeats out unless asked for them.
	if r := mustCLI(t, url, "events", "--all", "--since", "1h"); strings.Contains(r.stdout, "heartbeat") || !strings.Contains(r.stdout, "inventory") {
		t.Errorf("events --since 1h: %s", r)
	}
	if r := mustCLI(t, url, "events", "--all", "--since", "1h", "--heartbeats", "--json"); !strings.Contains(r.stdout, `"kind":"agent.heartbeat"`) {
		t.Errorf("events --since 1h --heartbeats: %s", r)
	}
	if r := mustCLI(t, url, "hives", "--stale", "1ms"); strings.Contains(r.stdout, gone) {
		t.Errorf("hives --stale 1ms lists %s: %s", gone, r)
	}
	wantCLI(t, runCLI(t, url, "hives", "--stale", "0s"), 2, "--stale")

	// No HIVE_EVENTS (no JetStream here): the answering agents, and a note.
	s2 := testenv.NATS(t)
	startAgent(t, s2, newHive(t))
	r = mustCLI(t, s2.ClientURL(), "hives")
	if len(hiveRows(t, r.stdout)) != 1 || !strings.Contains(r.stderr, "note: only the agents that answer now are listed") {
		t.Errorf("hives without HIVE_EVENTS: %s", r)
	}
}

// hiveRows are the rows of a hives table, without its header.
func hiveRows(t *testing.T, table string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if !strings.HasPrefix(lines[0], "HIVE ") {
		t.Fatalf("not a hives table: %q", table)
	}
	return lines[1:]
}
