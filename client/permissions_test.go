package client_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
)

// A command the server's permissions refuse fails at once with a
// *PermissionError naming the subject (it used to wait for the whole
// timeout and say no agent answered); a request the user may send is
// unaffected. The server runs exactly deploy/nats/hive-agent.conf, the
// user is its operator-read one.
func TestClient_RefusedCommandIsAPermissionError(t *testing.T) {
	t.Setenv("QUEEN_PASSWORD", "q")
	t.Setenv("HIVE_PASSWORD", "h")
	t.Setenv("OPERATOR_PASSWORD", "o")
	opts, err := server.ProcessConfigFile(filepath.Join(testenv.RepoRoot(), "deploy", "nats", "hive-agent.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Port, opts.StoreDir = -1, t.TempDir()
	s := testenv.NATSWith(t, opts)
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("operator", "o"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Reported once, through the call: the handler set before does not get it.
	others := make(chan error, 8)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { others <- err })
	c := client.New(nc, client.WithTimeout(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err = c.Spawn(ctx, "gpu-node-07", client.SpawnRequest{ModelID: "m", Device: "cpu"}, nil)
	var pe *client.PermissionError
	if !errors.As(err, &pe) || pe.Op != "publish" || pe.Subject != "hive.gpu-node-07.worker.spawn" || !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("spawn as operator-read: %v (%T), want a *PermissionError for publish to hive.gpu-node-07.worker.spawn", err, err)
	}
	if want := `permission denied: publish to "hive.gpu-node-07.worker.spawn"`; err.Error()[:len(want)] != want {
		t.Errorf("message %q, want it to start %q", err, want)
	}
	_, err = c.Delete(ctx, "gpu-node-07", "w1", -1, nil)
	if !errors.As(err, &pe) || pe.Subject != "hive.gpu-node-07.worker.delete" {
		t.Errorf("delete as operator-read: %v, want a *PermissionError for hive.gpu-node-07.worker.delete", err)
	}
	// list is allowed: nobody serves the hive, which is said as such.
	if _, err := c.List(ctx, "gpu-node-07"); !errors.Is(err, client.ErrNoAgent) || !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("list as operator-read with no agent: %v, want no responders", err)
	}
	select {
	case err := <-others:
		t.Errorf("the connection's own error handler got %v", err)
	default:
	}
}

// Discovery refused, and a request whose answer could not come back (the
// inbox subscription refused), fail at once with a *PermissionError too.
func TestClient_RefusedDiscoveryAndInbox(t *testing.T) {
	s := testenv.NATSWith(t, &server.Options{Users: []*server.User{
		{Username: "no-srv", Password: "pw", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"hive.*.worker.list"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}}}},
		{Username: "no-inbox", Password: "pw", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{">"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"job.>"}}}},
	}})
	connect := func(user string) *client.Client {
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, "pw"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return client.New(nc, client.WithTimeout(time.Minute))
	}
	var pe *client.PermissionError
	if _, err := connect("no-srv").Discover(ctx(t)); !errors.As(err, &pe) || pe.Op != "publish" || pe.Subject != "$SRV.INFO.hive-agent" {
		t.Errorf("discovery without $SRV: %v, want a *PermissionError for publish to $SRV.INFO.hive-agent", err)
	}
	_, err := connect("no-inbox").List(ctx(t), "h1")
	if !errors.As(err, &pe) || pe.Op != "subscribe" || !strings.HasPrefix(pe.Subject, "_INBOX.") {
		t.Errorf("list without _INBOX: %v, want a *PermissionError for subscribe to _INBOX.…", err)
	}
}

// Events the credentials may not read fail at once naming the subject,
// live and replayed (a refused replay used to wait out the timeout).
func TestClient_RefusedEvents(t *testing.T) {
	s := testenv.NATSWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir(), Users: []*server.User{
		{Username: "no-events", Password: "pw", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"hive.*.worker.list"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}}}},
	}})
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("no-events", "pw"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := client.New(nc, client.WithTimeout(time.Minute))
	never := func(client.HiveEvent) { t.Error("an event arrived") }
	var pe *client.PermissionError
	err = c.Events(ctx(t), client.EventsOptions{Hive: "h1"}, never)
	if !errors.As(err, &pe) || pe.Op != "subscribe" || pe.Subject != "hive.h1.events.>" {
		t.Errorf("live events: %v, want a *PermissionError for subscribe to hive.h1.events.>", err)
	}
	err = c.Events(ctx(t), client.EventsOptions{Hive: "h1", Since: time.Hour}, never)
	if !errors.As(err, &pe) || pe.Op != "publish" || pe.Subject != "$JS.API.STREAM.INFO.HIVE_EVENTS" {
		t.Errorf("replayed events: %v, want a *PermissionError for publish to $JS.API.STREAM.INFO.HIVE_EVENTS", err)
	}
}
