//go:build unix

package consumer_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/wire"
)

// burstSize is the frozen-server test's burst; HIVE_TEST_BURST overrides
// it (e.g. 20000) to measure by hand.
func burstSize(t testing.TB) int {
	if v := os.Getenv("HIVE_TEST_BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("HIVE_TEST_BURST %q: want a whole number", v)
		}
		return n
	}
	return 3000
}

// smallSendBuffer dials with a 32 KiB socket send buffer, so that a burst
// of a few thousand results fills what a stalled server leaves unread as
// 20,000 do with the default buffers.
var smallSendBuffer = &net.Dialer{Timeout: time.Second, Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 32<<10) })
	if err != nil {
		return err
	}
	return serr
}}

// A server that stops reading while the agent answers a burst of commands
// (a SIGSTOPped node under load): the agent notices it about as fast as a
// missed ping, moves to another node of its list, and every command that
// ran gets its result delivered, counted by command_id. Seen before the
// fix: the agent's writes blocked for the client's one-minute write
// deadline, the keep-alive stuck behind them, and results beyond the
// window's 4,096 entries were never published again.
func TestConsumer_FrozenServerUnderLoadLosesNoResult(t *testing.T) {
	nodes := cluster(t)
	p := newProxy(t, nodes[0].Addr().String())
	burst := burstSize(t)
	lost := make(chan time.Time, 1)
	back := make(chan time.Time, 1)
	a := startAgent(t, nodes[1], func(o *agentOpts) {
		o.url = strings.Join([]string{p.URL(), nodes[1].ClientURL(), nodes[2].ClientURL()}, ",")
		o.natsOpts = append(consumer.KeepAlive(time.Second, 2),
			nats.DontRandomize(), nats.IgnoreDiscoveredServers(), nats.MaxReconnects(-1),
			nats.ReconnectWait(100*time.Millisecond), nats.Timeout(time.Second), nats.SetCustomDialer(consumer.CloseOnWriteTimeout(smallSendBuffer)))
		o.onLost = func() {
			t.Logf("agent: disconnected at %s", time.Now().Format(time.TimeOnly))
			select {
			case lost <- time.Now():
			default:
			}
		}
		o.onBack = func() {
			t.Logf("agent: reconnected at %s", time.Now().Format(time.TimeOnly))
			select {
			case back <- time.Now():
			default:
			}
		}
	})
	if got := a.nc.ConnectedUrl(); got != p.URL() {
		t.Fatalf("agent connected to %s, want node A through the proxy %s", got, p.URL())
	}

	// The observer, on node C, counts results by command_id.
	obs, err := nats.Connect(nodes[2].ClientURL(), nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
		t.Logf("observer: disconnected: %v", err)
	}), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { t.Logf("observer: %v", err) }))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	sub, err := obs.Subscribe("job.*.result", func(m *nats.Msg) {
		var r reply
		// A busy refusal did not run; it is not published again.
		if json.Unmarshal(m.Data, &r) == nil && r.Kind == "worker.list" && (r.Error == nil || r.Error.Code != "busy") {
			mu.Lock()
			seen[r.CommandID]++
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	waitInterest(t, obs, nodes[0], "job.probe.result")
	waitServed(t, a.client, a.subject("list"))
	distinct := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

	// The burst, from node B; node A stalls once the agent is answering.
	inbox := a.client.NewInbox()
	rsub, err := a.client.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	rsub.SetPendingLimits(-1, -1)
	for i := range burst {
		body := fmt.Sprintf(`{"job_id":"burst-%d","command_id":"burst-cmd-%d"}`, i, i)
		if err := a.client.PublishRequest(a.subject("list"), inbox, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	a.client.Flush()
	for start := distinct(); distinct() < start+burst/20; {
		time.Sleep(time.Millisecond)
	}
	p.stall()
	stalledAt := time.Now()
	t.Logf("node A stalled with %d results seen", distinct())

	lostAt, err := within(lost, 120*time.Second)
	if err != nil {
		t.Fatal("the agent did not notice the stalled server within 120 s")
	}
	if _, err := within(back, 60*time.Second); err != nil {
		t.Fatal("the agent did not reconnect within 60 s")
	}
	if got := a.nc.ConnectedUrl(); got != nodes[1].ClientURL() && got != nodes[2].ClientURL() {
		t.Errorf("agent reconnected to %s, want node B or C", got)
	}
	// Every command the agent ran (its own count) has its result at the
	// observer. The agent still works through the requests it had read
	// before the stall: wait until its count stands still.
	var ran uint64
	prev := ^uint64(0)
	for settled := time.Now().Add(120 * time.Second); ; prev = ran {
		ran = listCommands(t, a)
		if ran == prev && uint64(distinct()) >= ran || time.Now().After(settled) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	got := uint64(distinct())
	t.Logf("burst %d: stalled server noticed after %s; commands run %d, results delivered %d (lost %d), messages published again %d",
		burst, lostAt.Sub(stalledAt).Round(time.Millisecond), ran, got, int64(ran)-int64(got), republished(t, a))
	if got < ran {
		t.Errorf("%d commands ran but only %d results reached the observer: %d lost", ran, got, ran-got)
		// Which: commands that replied but have no result.
		var missing []string
		for m, err := rsub.NextMsg(0); err == nil && len(missing) < 10; m, err = rsub.NextMsg(0) {
			var r reply
			if json.Unmarshal(m.Data, &r) == nil && (r.Error == nil || r.Error.Code != "busy") {
				mu.Lock()
				if seen[r.CommandID] == 0 {
					missing = append(missing, r.CommandID)
				}
				mu.Unlock()
			}
		}
		t.Logf("replied without a result (at most 10): %q", missing)
		// What NATS itself dropped: node A's stale client is the agent's
		// stalled connection; anything else is on the way to the observer.
		for _, n := range nodes {
			if v, err := n.Varz(nil); err == nil {
				t.Logf("node %s: slow consumers %d %+v, stale connections %d %+v", n.Name(),
					v.SlowConsumers, v.SlowConsumersStats, v.StaleConnections, v.StaleConnectionStats)
			}
		}
	}
	// The agent still has the burst's tail to answer (busy beyond its
	// limit); then it serves as before.
	for deadline := time.Now().Add(60 * time.Second); ; {
		m, err := a.client.Request(a.subject("list"), nil, 5*time.Second)
		if err == nil && strings.Contains(string(m.Data), `"ok":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list after the burst: %v %s, want ok", err, msgData(m))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// waitInterest waits until a message published on server s reaches obs's
// subscriptions made before (interest travels the routes in order).
func waitInterest(t testing.TB, obs *nats.Conn, s interface{ ClientURL() string }, subject string) {
	t.Helper()
	probe, err := obs.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Unsubscribe()
	obs.Flush()
	pub, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		pub.Publish(subject, []byte(`{}`))
		if _, err := probe.NextMsg(50 * time.Millisecond); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("interest in %s never reached %s", subject, s.ClientURL())
		}
	}
}

// listCommands is the agent's count of worker.list commands it ran (not
// those it refused as busy).
func listCommands(t testing.TB, a *agent) uint64 {
	t.Helper()
	// Right after a reconnect the agent's service may not be reachable yet.
	msg, err := a.client.Request("$SRV.STATS.hive-agent", nil, 10*time.Second)
	for deadline := time.Now().Add(30 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		msg, err = a.client.Request("$SRV.STATS.hive-agent", nil, 10*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Endpoints []struct {
			Name string         `json:"name"`
			Data wire.StatsData `json:"data"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		t.Fatalf("stats: %v: %s", err, msg.Data)
	}
	for _, e := range st.Endpoints {
		if e.Name == "list" {
			return e.Data.Commands - e.Data.Errors["busy"]
		}
	}
	t.Fatalf("stats: no list endpoint: %s", msg.Data)
	return 0
}

// When the republish window holds its byte bound, the agent takes no new
// command (busy, saying why) rather than forgetting results that may
// have to be published again; once they leave the window it serves again.
// Seen before: the oldest were dropped with a warning, and lost if the
// connection had swallowed them.
func TestConsumer_FullRepublishWindowRefusesWork(t *testing.T) {
	s := natsServer(t, server.Options{})
	a := startAgent(t, s, func(o *agentOpts) {
		o.config = func(_ *nats.Conn, c *consumer.Config) {
			c.RepublishMaxBytes, c.RepublishWindow = 4096, 2*time.Second
		}
	})
	var busy reply
	for i := 0; busy.raw == nil; i++ {
		if i == 100 {
			t.Fatal("100 commands within the window, none refused")
		}
		if r := a.req(t, "list", ""); !r.OK {
			busy = r
		}
	}
	wantError(t, busy, "busy", "")
	if want := "keeps 4 KiB of results it may have to publish again after a reconnect, its limit"; !strings.Contains(busy.Error.Message, want) {
		t.Errorf("busy message %q, want it to say %q", busy.Error.Message, want)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if r := a.req(t, "list", ""); r.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still busy 30 s after the window's 2 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
