package consumer_test

import (
	"errors"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rbee/hive-agent/internal/testenv"
)

// proxy forwards TCP connections to a NATS server. Frozen, it stops
// forwarding and drops what it reads, but keeps every socket open: to the
// client the server is hung (a partition), not gone. Refusing, it closes
// new connections at once.
type proxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	frozen bool
	// stalled: like frozen, and it stops reading too, so the sockets'
	// buffers fill and the client's writes block, as with a SIGSTOPped server.
	stalled chan struct{}
	refuse  bool
	conns   []net.Conn
	closing bool
	done    chan struct{} // closed by close
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, done: make(chan struct{})}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) URL() string { return "nats://" + p.l.Addr().String() }

func (p *proxy) freeze() { p.mu.Lock(); p.frozen = true; p.mu.Unlock() }

// stall freezes the proxy and stops it reading: a client writing to it
// blocks once the socket buffers are full.
func (p *proxy) stall() {
	p.mu.Lock()
	p.frozen = true
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
	p.mu.Unlock()
}

func (p *proxy) stallCh() chan struct{} { p.mu.Lock(); defer p.mu.Unlock(); return p.stalled }

// thaw forwards again, on connections made from now on.
func (p *proxy) thaw() { p.mu.Lock(); p.frozen = false; p.mu.Unlock() }

func (p *proxy) setRefuse(v bool) { p.mu.Lock(); p.refuse = v; p.mu.Unlock() }

func (p *proxy) isFrozen() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.frozen }

func (p *proxy) accept() {
	for {
		down, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse, closing := p.refuse, p.closing
		p.mu.Unlock()
		if refuse || closing {
			down.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		go p.pipe(down, up)
		go p.pipe(up, down)
	}
}

// pipe copies from src to dst until src ends, then closes both, unless
// frozen: a frozen proxy forwards neither data nor the end of a connection.
func (p *proxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if ch := p.stallCh(); ch != nil {
			<-p.done // read no more until the proxy closes
			return
		}
		n, err := src.Read(buf)
		if n > 0 && !p.isFrozen() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if !p.isFrozen() {
				src.Close()
				dst.Close()
			}
			return
		}
	}
}

func (p *proxy) close() {
	p.mu.Lock()
	if !p.closing {
		close(p.done)
	}
	p.closing = true
	conns := p.conns
	p.mu.Unlock()
	p.l.Close()
	for _, c := range conns {
		c.Close()
	}
}

// natsServer starts an embedded NATS server with opts on loopback (port
// -1 when opts.Port is 0). Servers ping their clients every second, so a
// client behind a frozen proxy is dropped within seconds and its
// subscriptions stop attracting messages; see docs/nats.md.
func natsServer(t testing.TB, opts server.Options) *server.Server {
	t.Helper()
	opts.PingInterval, opts.MaxPingsOut = time.Second, 2
	return testenv.NATSWith(t, &opts)
}

// cluster starts three routed NATS servers and waits for the full mesh.
func cluster(t testing.TB) []*server.Server {
	t.Helper()
	// Routes ping at their own, relaxed pace: a route a loaded machine
	// takes for stale is closed with the messages in flight on it, a loss
	// no agent can prevent and none of these tests is about.
	clusterOpts := server.ClusterOpts{Name: "hive-test", Host: "127.0.0.1", Port: -1,
		PingInterval: 10 * time.Second, MaxPingsOut: 3}
	a := natsServer(t, server.Options{ServerName: "A", Cluster: clusterOpts})
	routes := []*url.URL{{Scheme: "nats", Host: a.ClusterAddr().String()}}
	b := natsServer(t, server.Options{ServerName: "B", Cluster: clusterOpts, Routes: routes})
	// C holds the tests' observers: it pings its clients at the default
	// pace, so a test process a loaded machine starves for a few seconds
	// is not cut off, losing what was on its way to it.
	c := testenv.NATSWith(t, &server.Options{ServerName: "C", Cluster: clusterOpts, Routes: routes})
	all := []*server.Server{a, b, c}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range all {
		for peers := routedTo(s); len(peers) < 2; peers = routedTo(s) {
			if time.Now().After(deadline) {
				t.Fatalf("server %s is routed to %v after 20 s, want the other two", s.Name(), peers)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return all
}

var errTimeout = errors.New("timed out")

// within waits up to d for ch and reports errTimeout when it did not come.
func within[T any](ch <-chan T, d time.Duration) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-time.After(d):
		var zero T
		return zero, errTimeout
	}
}

// routedTo names the servers s has a route to (a route may be a pool of connections).
func routedTo(s *server.Server) map[string]bool {
	rz, err := s.Routez(nil)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, r := range rz.Routes {
		out[r.RemoteName] = true
	}
	return out
}
