//go:build unix

package spawner

import (
	"strings"
	"testing"

	"github.com/rbee/hive-agent/internal/testenv"
)

// A worker's environment carries none of the agent's NATS_* or HIVE_*
// configuration (a NATS URL may hold a token), only the marker.
func TestSpawner_WorkerEnvHasNoAgentConfig(t *testing.T) {
	t.Setenv("NATS_URL", "nats://secret-token@host:4222")
	t.Setenv("NATS_CREDS", "/secret/user.creds")
	t.Setenv("HIVE_QUEEN_URL", "http://queen.internal:7833")
	t.Setenv("HIVE_ID", "agent-hive")
	t.Setenv("HIVE_AGENT_WORKER_ID", "inherited")
	t.Setenv("KEEP_ME", "yes")
	h := newHarness(t, 9300, 9399)
	hd := h.mustStart(t, h.spec(t, "w1", "m"))
	env := testenv.Environ(hd.PID)
	h.mustStop(t, "w1", stopGrace)
	<-hd.Done()
	if env == nil {
		t.Fatal("could not read the worker's environment")
	}
	for k, v := range env {
		if strings.HasPrefix(k, "NATS_") || (strings.HasPrefix(k, "HIVE_") && !strings.HasPrefix(k, markerPrefix)) {
			t.Errorf("worker environment has %s=%s", k, v)
		}
	}
	if env[envWorker] != "w1" || env[envHive] != h.hive {
		t.Errorf("marker: worker %q hive %q, want w1 and %s", env[envWorker], env[envHive], h.hive)
	}
	if env["KEEP_ME"] != "yes" {
		t.Errorf("KEEP_ME = %q, want the rest of the environment passed on", env["KEEP_ME"])
	}
}
