// Package agenttest starts a real hive-agent in process for tests: the
// agent package's agent, wired exactly as cmd/hive-agent runs it, on a
// test NATS server, with test defaults and cleanup. It is its own package,
// not part of testenv, because spawner's in-package tests import testenv
// and agent imports spawner: testenv importing agent would be a cycle.
package agenttest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/hive-agent/agent"
	"github.com/rbee/hive-agent/internal/testenv"
)

// Start starts an agent with cfg, failing the test when it does not
// start. See TryStart.
func Start(t testing.TB, cfg agent.Config) *agent.Agent {
	t.Helper()
	a, err := TryStart(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TryStart starts an agent with cfg and returns it with Start's error.
// Unset fields get test values: a fresh hive id, a log directory in the
// test's temp dir, JetStream off, no GPU policy unless GPU.Source is set,
// the log to the test's at warn level.
// When the test ends the hive's workers are stopped, the agent is
// closed, and no process of the hive may be left.
func TryStart(t testing.TB, cfg agent.Config) (*agent.Agent, error) {
	t.Helper()
	if cfg.HiveID == "" {
		cfg.HiveID = testenv.HiveID(t)
	}
	if cfg.LogDir == "" {
		cfg.LogDir = t.TempDir()
	}
	if cfg.JetStream == "" {
		cfg.JetStream = agent.JetStreamOff
	}
	if cfg.GPU.Source == nil {
		cfg.GPU.Off = true // no nvidia-smi behind the test's back
	}
	if cfg.Version == "" {
		cfg.Version = "0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	testenv.NoLeftovers(t, cfg.HiveID)
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testenv.Stop(cfg.HiveID) // workers a failed test left behind
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("close agent of hive %s: %v", cfg.HiveID, err)
		}
	})
	return a, a.Start(context.Background())
}

// testWriter sends the agent's log to the test's log until the test ends.
// A worker's exit is reported from the spawner's own goroutine, which can
// log after the test has ended (testing panics then): that goes nowhere.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func newTestWriter(t testing.TB) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}
