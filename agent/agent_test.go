package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive-agent/agent"
	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/agenttest"
	"github.com/rbee/hive-agent/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, func(string) error { return nil }) }

// A configuration the agent cannot start with is refused by New, naming
// every setting at fault, before anything is started.
func TestNew_RefusesWhatCannotStart(t *testing.T) {
	_, err := agent.New(agent.Config{JetStream: "sometimes"})
	if err == nil {
		t.Fatal("New with no hive id, no log dir and a bad jetstream mode: got nil")
	}
	for _, want := range []string{"hive id", "log dir", `jetstream "sometimes"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// A second agent of one hive id does not start (the claim), and the first
// serves on; once the first closes, a new one starts.
func TestAgent_OneAgentPerHive(t *testing.T) {
	s := testenv.NATS(t)
	first := agenttest.Start(t, agent.Config{NATSURL: s.ClientURL()})
	hive := first.Spawner().HiveID()
	_, err := agenttest.TryStart(t, agent.Config{HiveID: hive, NATSURL: s.ClientURL()})
	if !errors.Is(err, consumer.ErrClaimed) {
		t.Fatalf("second agent of hive %s: got %v, want ErrClaimed", hive, err)
	}
	c := client.New(testenv.Connect(t, s))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.List(ctx, hive); err != nil {
		t.Fatalf("the first agent after the second was refused: %v", err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	agenttest.Start(t, agent.Config{HiveID: hive, NATSURL: s.ClientURL()})
	if _, err := c.List(ctx, hive); err != nil {
		t.Fatalf("the agent started after the first closed: %v", err)
	}
}
