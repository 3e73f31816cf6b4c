package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/agent"
	"github.com/rbee/hive-agent/internal/agenttest"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// stop of a worker that failed and waits for its restart cancels the
// restart and says so, instead of a pid 0 and no signal.
func TestCLI_StopDuringRestartBackoffSaysRestartCancelled(t *testing.T) {
	s := testenv.NATS(t)
	// In process, for a restart backoff long enough that the stop surely
	// comes while the worker waits for its restart.
	a := agenttest.Start(t, agent.Config{NATSURL: s.ClientURL(), WorkerDirs: []string{workerDir},
		PortMin: 9700, PortMax: 9799, RestartBackoff: time.Hour})
	hive := a.Spawner().HiveID()
	url := s.ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subj, err := subjects.WorkerEvent(hive, subjects.EventExited)
	if err != nil {
		t.Fatal(err)
	}
	exits, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	// It crashes at once; its restart is an hour away.
	mustCLI(t, url, "spawn", "-H", hive, "-m", "m@crash", "-d", "cpu", "--id", "phoenix",
		"--wait", "exec", "--restart", "on-failure", "--max-restarts", "10")
	for {
		m, err := exits.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("no exited event with a restart to come: %v", err)
		}
		var ev wire.ExitedEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.WorkerID == "phoenix" && ev.Restart == 1 && ev.RestartInMS > 0 {
			break
		}
	}
	r := mustCLI(t, url, "stop", "phoenix", "-H", hive)
	if got := field(r.stdout, "restart cancelled"); !strings.HasPrefix(got, "yes") {
		t.Errorf("stop during restart backoff: restart field %q, want it cancelled: %s", got, r)
	}
	if field(r.stdout, "worker") != "phoenix" || field(r.stdout, "pid") != "" || field(r.stdout, "signal") != "" {
		t.Errorf("stop during restart backoff: want the worker and no pid or signal (none was sent): %s", r)
	}
	if !strings.Contains(r.stderr, "worker_restart_cancelled") || !strings.Contains(r.stderr, "the restart is cancelled") ||
		strings.Contains(r.stderr, "pid 0") {
		t.Errorf("stop during restart backoff: narration: want worker_restart_cancelled and an end that says so, no pid 0: %s", r)
	}
	// The restart stays cancelled, and the agent serves the next command.
	r = mustCLI(t, url, "ls", "-H", hive)
	if rows := tableRows(t, r.stdout); len(rows) != 0 {
		t.Errorf("ls after the cancelled restart: %s", r)
	}
}
