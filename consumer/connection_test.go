package consumer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

func inventories(t testing.TB, msgs [][]byte) []wire.InventoryEvent {
	t.Helper()
	out := make([]wire.InventoryEvent, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m, &out[i]); err != nil {
			t.Fatalf("inventory %d is not JSON: %v: %s", i, err, m)
		}
	}
	return out
}

// The agent publishes its inventory when it starts and again after every
// reconnect; the reconnect inventory lists the worker that kept running
// while NATS was restarted.
func TestConsumer_InventoryOnStartAndReconnect(t *testing.T) {
	s1 := natsServer(t, server.Options{})
	port := s1.Addr().String()
	p := newProxy(t, port)
	var inv *watch
	reconnected := make(chan struct{}, 1)
	a := startAgent(t, s1, func(o *agentOpts) {
		o.url = p.URL()
		o.natsOpts = []nats.Option{nats.ReconnectWait(50 * time.Millisecond), nats.MaxReconnects(-1)}
		o.clientOpts = []nats.Option{nats.ReconnectWait(50 * time.Millisecond), nats.MaxReconnects(-1),
			nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} })}
		o.beforeStart = func(a *agent) { inv = a.watch(t, "hive."+a.hive+".events.inventory") }
	})
	first := inventories(t, inv.waitFor(t, "the start inventory", inv.count(1)))[0]
	var info struct {
		ID string `json:"id"`
	}
	msg, err := a.client.Request("$SRV.INFO.hive-agent", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(msg.Data, &info)
	if first.HiveID != a.hive || first.Reason != "start" || first.Instance != info.ID || first.Workers == nil || len(first.Workers) != 0 {
		t.Errorf("start inventory: got %+v, want hive %s, reason start, instance %s, an empty workers array", first, a.hive, info.ID)
	}

	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"survivor","model_id":"m","device":"cpu","wait":"exec"}`, &sp)

	// Restart NATS on the same port. The agent's way back stays shut until
	// the client has resubscribed, so the reconnect inventory has a reader.
	p.setRefuse(true)
	s1.Shutdown()
	s1.WaitForShutdown()
	_, portStr, _ := strings.Cut(port, ":")
	n, _ := strconv.Atoi(portStr)
	natsServer(t, server.Options{Port: n})
	if _, err := within(reconnected, 20*time.Second); err != nil {
		t.Fatal("the client did not reconnect to the restarted server")
	}
	if err := a.client.Flush(); err != nil {
		t.Fatal(err)
	}
	p.setRefuse(false)
	msgs := inv.waitFor(t, "the reconnect inventory", inv.count(2))
	second := inventories(t, msgs)[1]
	if second.Reason != "reconnect" || second.Instance != info.ID || len(second.Workers) != 1 ||
		second.Workers[0].WorkerID != "survivor" || second.Workers[0].PID != sp.PID || second.Workers[0].State != "running" {
		t.Errorf("reconnect inventory: got %+v, want reason reconnect listing survivor (pid %d, state running)", second, sp.PID)
	}
	a.stillServes(t)
	a.must(t, "delete", `{"worker_id":"survivor","grace_ms":0}`, nil)
	a.close() // while the restarted server, stopped first at cleanup, still runs
}

// failoverPing is the agent's keep-alive in the failover test;
// HIVE_TEST_FAILOVER_PING overrides it (e.g. 5s, the agent's default) to
// measure the failover by hand.
func failoverPing(t testing.TB) time.Duration {
	if v := os.Getenv("HIVE_TEST_FAILOVER_PING"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("HIVE_TEST_FAILOVER_PING: %v", err)
		}
		return d
	}
	return 2 * time.Second
}

// A server that stops answering (a partition between the agent and its
// node) is noticed within the bound, the agent moves to another node of
// its list and serves the next command, and the result of a spawn that
// finished while the connection was dead reaches the client after all:
// published again after the reconnect, as is the reply to the waiting
// requester.
func TestConsumer_FailoverFromFrozenServer(t *testing.T) {
	nodes := cluster(t)
	p := newProxy(t, nodes[0].Addr().String())
	ping := failoverPing(t)
	lost := make(chan time.Time, 1)
	back := make(chan time.Time, 1)
	a := startAgent(t, nodes[1], func(o *agentOpts) {
		o.url = strings.Join([]string{p.URL(), nodes[1].ClientURL(), nodes[2].ClientURL()}, ",")
		o.natsOpts = []nats.Option{
			nats.DontRandomize(), nats.IgnoreDiscoveredServers(), nats.MaxReconnects(-1),
			nats.PingInterval(ping), nats.MaxPingsOutstanding(2),
			nats.ReconnectWait(100 * time.Millisecond), nats.Timeout(time.Second),
		}
		o.onLost = func() { lost <- time.Now() }
		o.onBack = func() { back <- time.Now() }
	})
	if got := a.nc.ConnectedUrl(); got != p.URL() {
		t.Fatalf("agent connected to %s, want node A through the proxy %s", got, p.URL())
	}
	// The client is on node B: the agent's subscriptions reach it through
	// the route a moment after the agent subscribed on node A.
	waitServed(t, a.client, a.subject("list"))
	const job = "failover-spawn"
	results := a.watch(t, "job."+job+".result")
	narration := a.watch(t, "job."+job+".narration")

	// The worker answers /health only after a second: the spawn is still
	// waiting when the proxy freezes, and finishes while the agent's
	// connection is dead but not yet known to be.
	replies := make(chan *nats.Msg, 1)
	go func() {
		m, err := a.client.Request(a.subject("spawn"), []byte(`{"job_id":"`+job+`","command_id":"failover-cmd","worker_id":"fw",`+
			`"model_id":"m@ready-after=1s","device":"cpu","wait":"ready","wait_timeout_ms":60000}`), 90*time.Second)
		if err != nil {
			t.Errorf("spawn request: %v", err)
		}
		replies <- m
	}()
	narration.waitFor(t, "worker_process_started", func(msgs [][]byte) bool {
		return slices.Contains(actions(events(t, msgs)), "worker_process_started")
	})
	p.freeze()
	frozenAt := time.Now()

	lostAt, err := within(lost, 30*time.Second)
	if err != nil {
		t.Fatal("the agent did not notice the frozen server within 30 s")
	}
	// The protocol's bound; with the test's keep-alive the agent notices
	// after two to three ping intervals.
	if d := lostAt.Sub(frozenAt); d > 15*time.Second {
		t.Errorf("the agent noticed the frozen server after %s, want within 15 s", d)
	}
	if _, err := within(back, 30*time.Second); err != nil {
		t.Fatal("the agent did not reconnect within 30 s")
	}
	if got := a.nc.ConnectedUrl(); got != nodes[1].ClientURL() && got != nodes[2].ClientURL() {
		t.Errorf("agent reconnected to %s, want node B or C", got)
	}
	// Node A forgets the agent's old subscriptions only when its own pings
	// go unanswered; until then a command may be routed there and lost, so
	// the client retries as any client of a partitioned system must.
	var answeredAt time.Time
	for deadline := time.Now().Add(60 * time.Second); answeredAt.IsZero(); {
		if time.Now().After(deadline) {
			t.Fatal("the agent serves no command 60 s after the freeze")
		}
		if m, err := a.client.Request(a.subject("list"), nil, 2*time.Second); err == nil && strings.Contains(string(m.Data), `"ok":true`) {
			answeredAt = time.Now()
		}
	}
	t.Logf("keep-alive %s x 2: lost connection noticed %s after the freeze, first answer after %s",
		ping, lostAt.Sub(frozenAt).Round(time.Millisecond), answeredAt.Sub(frozenAt).Round(time.Millisecond))

	msgs := results.waitFor(t, "the spawn's result", results.count(1))
	for _, m := range msgs {
		var r reply
		if err := json.Unmarshal(m, &r); err != nil || !r.OK || r.CommandID != "failover-cmd" {
			t.Errorf("result: got %s, want ok for command failover-cmd", m)
		}
	}
	if m, err := within(replies, 30*time.Second); err != nil || m == nil || !strings.Contains(string(m.Data), `"ok":true`) {
		t.Errorf("the requester got no ok reply: %v", err)
	}
	// The spawn's end narration is not published again: when it is missing,
	// it went into the dead connection, and the result above came from the
	// republish. When present, the spawn ended after the loss was noticed
	// (a slow machine) and nats.go's reconnect buffer carried both.
	ended := slices.ContainsFunc(events(t, narration.snapshot()), func(e wire.Event) bool { return e.OK != nil })
	st := republished(t, a)
	if !ended && st == 0 {
		t.Errorf("the spawn ended before the loss was noticed, yet nothing was published again")
	}
	t.Logf("spawn ended before the loss was noticed: %v; messages published again: %d", !ended, st)
	a.must(t, "delete", `{"worker_id":"fw","grace_ms":0}`, nil)
}

// republished reads the agent's count of messages published again from its stats.
func republished(t testing.TB, a *agent) uint64 {
	t.Helper()
	msg, err := a.client.Request("$SRV.STATS.hive-agent", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Endpoints []struct {
			Data wire.StatsData `json:"data"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(msg.Data, &st); err != nil || len(st.Endpoints) == 0 {
		t.Fatalf("stats: %v: %s", err, msg.Data)
	}
	return st.Endpoints[0].Data.Republished
}

// waitServed waits until a request to subject gets an answer from nc's
// server, i.e. the agent's interest has reached it.
func waitServed(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := nc.Request(subject, nil, 2*time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served: %v", subject, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection dialled through CloseOnWriteTimeout closes itself when a
// write times out, so nats.go's reader fails and it reconnects (nats.go
// alone keeps a connection whose timed-out write wrote nothing, and drops
// what it had buffered).
func TestCloseOnWriteTimeout_ClosesTheConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c // held open, never read
		}
	}()
	conn, err := consumer.CloseOnWriteTimeout(nil).Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer := <-accepted
	defer peer.Close()
	conn.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 1<<20)
	for i := 0; ; i++ {
		_, err := conn.Write(buf)
		if err == nil {
			if i == 1000 {
				t.Fatal("1 GiB written to a peer that reads nothing")
			}
			continue
		}
		if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("write: %v, want a timeout", err)
		}
		break
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after the timed-out write: %v, want the connection closed", err)
	}
}

// The agent's connection options (KeepAlive, with its dialer) work over
// TLS: nats.go wraps the dialled connection in TLS after the dial.
func TestKeepAlive_OverTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	s := testenv.NATSWith(t, &server.Options{TLS: true, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}})
	nc, err := nats.Connect("tls://"+s.Addr().String(), append(consumer.KeepAlive(time.Second, 2), nats.Secure(&tls.Config{RootCAs: pool}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe("tls.echo", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	m, err := nc.Request("tls.echo", []byte("hi"), 5*time.Second)
	if err != nil {
		t.Fatalf("request over TLS: %v", err)
	}
	if string(m.Data) != "hi" {
		t.Fatalf("request over TLS: got %q, want hi", m.Data)
	}
	if !nc.TLSRequired() {
		t.Error("the connection does not use TLS")
	}
}
