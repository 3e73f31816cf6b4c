package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rbee/hive-agent/agent"
	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/internal/agenttest"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

var workerDir string

func TestMain(m *testing.M) {
	testenv.Main(m, func(dir string) error { workerDir = dir; return nil })
}

// startAgent runs a real hive-agent in process (package agent, as
// cmd/hive-agent runs it) on s, for a fresh hive id. Its workers are
// stopped when the test ends, and none may be left then.
func startAgent(t *testing.T, s *server.Server) string {
	t.Helper()
	a := agenttest.Start(t, agent.Config{
		NATSURL: s.ClientURL(), Version: "0.0.1-test", WorkerDirs: []string{workerDir},
		PortMin: 9800, PortMax: 9899, MaxInFlight: 8,
		Defaults: commands.Defaults{QueenURL: "http://localhost:7833", Wait: wire.WaitAlive,
			AliveWindow: 200 * time.Millisecond, ReadyTimeout: 10 * time.Second},
	})
	return a.Spawner().HiveID()
}

// newClient returns a client on its own connection to s.
func newClient(t *testing.T, s *server.Server, opts ...client.Option) *client.Client {
	t.Helper()
	return client.New(testenv.Connect(t, s), opts...)
}

// ctx is a test context with a generous bound.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// recorder collects narration events as onEvent receives them.
type recorder struct{ events []client.Event }

func (r *recorder) add(e client.Event) { r.events = append(r.events, e) }

func (r *recorder) actions() []string {
	out := make([]string, len(r.events))
	for i, e := range r.events {
		out[i] = e.Action
	}
	return out
}

// checkOrdered asserts the events are one command's narration, complete
// and in order: seq 1, 2, 3…, one job and command, the end event last.
func checkOrdered(t *testing.T, evs []client.Event, jobID, commandID string, ok bool) {
	t.Helper()
	if len(evs) < 2 {
		t.Fatalf("got %d events, want at least a start and an end", len(evs))
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d (%s): seq %d, want %d", i, e.Action, e.Seq, i+1)
		}
		if e.JobID != jobID || e.CommandID != commandID {
			t.Errorf("event %d: job %q command %q, want %q %q", i, e.JobID, e.CommandID, jobID, commandID)
		}
		if e.TS.IsZero() || e.Human == "" {
			t.Errorf("event %d: missing ts or human: %+v", i, e)
		}
		if e.End() != (i == len(evs)-1) {
			t.Errorf("event %d (%s): end %v, want the end event last and only there", i, e.Action, e.End())
		}
	}
	if end := evs[len(evs)-1]; end.OK != nil && *end.OK != ok {
		t.Errorf("end event ok %v, want %v", *end.OK, ok)
	}
}
