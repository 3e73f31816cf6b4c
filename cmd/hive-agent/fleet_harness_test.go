package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/internal/testenv"
)

// fleet is a hub server with two leaf nodes dialling out to it, each with
// its own JetStream domain (hub, leaf1, leaf2), as docs/topology.md lays out.
type fleet struct {
	hub, leaf1, leaf2 *server.Server
	hubOpts           server.Options // to start the hub again on its ports and store
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{hubOpts: server.Options{
		ServerName: "hub", Port: freePort(t), JetStream: true, JetStreamDomain: "hub", StoreDir: t.TempDir(),
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: freePort(t)},
	}}
	f.hub = f.startHub(t)
	remote, _ := url.Parse(fmt.Sprintf("nats-leaf://127.0.0.1:%d", f.hubOpts.LeafNode.Port))
	leaf := func(name string) *server.Server {
		return testenv.NATSWith(t, &server.Options{
			ServerName: name, JetStream: true, JetStreamDomain: name, StoreDir: t.TempDir(),
			LeafNode: server.LeafNodeOpts{ReconnectInterval: 200 * time.Millisecond,
				Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{remote}}}},
		})
	}
	f.leaf1, f.leaf2 = leaf("leaf1"), leaf("leaf2")
	f.waitLinks(t, 2)
	return f
}

// startHub starts the hub (again) on its ports, with its JetStream store.
func (f *fleet) startHub(t *testing.T) *server.Server {
	t.Helper()
	opts := f.hubOpts
	return testenv.NATSWith(t, &opts)
}

// waitLinks waits until the hub has n leaf node connections.
func (f *fleet) waitLinks(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for f.hub.NumLeafNodes() != n {
		if time.Now().After(deadline) {
			t.Fatalf("hub has %d leaf node links, want %d", f.hub.NumLeafNodes(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startFleetAgent runs an agent for hive on s with its streams in domain.
func startFleetAgent(t *testing.T, s *server.Server, hive, domain, logDir string) *proc {
	t.Helper()
	a := startBinary(t, logDir, "--hive-id", hive, "--nats-url", s.ClientURL(), "--jetstream", "on", "--jetstream-domain", domain)
	a.waitLog(t, "taking durable intake commands")
	a.waitLog(t, "serving worker commands")
	return a
}

// waitServed waits until a list request for hive sent through nc is answered.
func waitServed(t *testing.T, nc *nats.Conn, hive string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := nc.Request("hive."+hive+".worker.list", nil, time.Second)
		if err == nil && strings.Contains(string(m.Data), `"ok":true`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hive %s not reached from %s: %v", hive, nc.ConnectedServerName(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stored counts, per subject, what stream holds under filter in domain,
// read through nc; a missing stream holds nothing.
func stored(t *testing.T, nc *nats.Conn, domain, stream, filter string) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.NewWithDomain(nc, domain)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("stream %s in domain %s: %v", stream, domain, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatalf("stream %s in domain %s: %v", stream, domain, err)
	}
	return info.State.Subjects
}

// storedEverywhere is stored for each domain of the fleet, by domain; only
// domains that hold something are in it.
func storedEverywhere(t *testing.T, nc *nats.Conn, stream, filter string) map[string]map[string]uint64 {
	t.Helper()
	all := map[string]map[string]uint64{}
	for _, d := range []string{"hub", "leaf1", "leaf2"} {
		if got := stored(t, nc, d, stream, filter); len(got) > 0 {
			all[d] = got
		}
	}
	return all
}
