package consumer_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
)

// The agent publishes its heartbeat at start and every interval: its hive,
// its micro instance, how many workers it lists and the commands in
// flight, in exactly the fields the client decodes.
func TestHeartbeat_SaysWhoAndHowMany(t *testing.T) {
	s := testenv.NATS(t)
	a := startAgent(t, s, func(o *agentOpts) {
		o.config = func(_ *nats.Conn, c *consumer.Config) { c.HeartbeatInterval = 100 * time.Millisecond }
	})
	w := a.watch(t, "hive."+a.hive+".events.agent.heartbeat")
	decode := func(m []byte) client.Heartbeat {
		t.Helper()
		var hb client.Heartbeat
		d := json.NewDecoder(bytes.NewReader(m))
		d.DisallowUnknownFields()
		if err := d.Decode(&hb); err != nil {
			t.Fatalf("heartbeat %s: %v", m, err)
		}
		return hb
	}
	first := decode(w.waitFor(t, "a heartbeat", w.count(1))[0])
	hives, err := client.New(a.client).Hives(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if first.HiveID != a.hive || len(hives) != 1 || first.Instance != hives[0].Instance || first.Workers != 0 || first.Draining {
		t.Errorf("heartbeat %+v, want hive %s, instance of %+v, no workers, not draining", first, a.hive, hives)
	}
	a.must(t, "spawn", `{"worker_id":"w1","model_id":"m","device":"cpu","wait":"exec"}`, nil)
	w.waitFor(t, "a heartbeat counting the worker", func(msgs [][]byte) bool {
		return decode(msgs[len(msgs)-1]).Workers == 1
	})
	a.must(t, "delete", `{"worker_id":"w1"}`, nil)
	a.stillServes(t)
}
