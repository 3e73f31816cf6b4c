package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
)

// jsServer starts an embedded server with JetStream storing under dir
// (a fresh directory when empty) on port (random when 0).
func jsServer(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return testenv.NATSWith(t, &server.Options{Port: port, JetStream: true, StoreDir: dir})
}

// testStreams is the streams' configuration the tests use: a short ack
// wait, so redeliveries come quickly.
var testStreams = consumer.StreamsConfig{AckWait: 2 * time.Second}

// withJetStream turns on intake and stored results for an agent.
func withJetStream(required bool) func(*agentOpts) {
	return func(o *agentOpts) {
		o.config = func(nc *nats.Conn, c *consumer.Config) {
			js, err := jetstream.New(nc)
			if err != nil {
				panic(err)
			}
			c.JetStream = &consumer.JetStreamConfig{JS: js, Streams: testStreams, Required: required}
		}
		o.natsOpts = append(o.natsOpts, nats.ReconnectWait(100*time.Millisecond), nats.MaxReconnects(-1))
		o.clientOpts = append(o.clientOpts, nats.ReconnectWait(100*time.Millisecond), nats.MaxReconnects(-1))
	}
}

func onHive(hive string) func(*agentOpts) { return func(o *agentOpts) { o.hive = hive } }

// jsOf is a JetStream context on a fresh connection to s.
func jsOf(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.ReconnectWait(100*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// setup creates the streams and the hive's consumer as `hive-agent setup` would.
func setup(t testing.TB, js jetstream.JetStream, hive string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := consumer.SetupStreams(ctx, js, hive, testStreams, true); err != nil {
		t.Fatal(err)
	}
}

// publish stores one intake command and returns its stream sequence.
func publish(t testing.TB, js jetstream.JetStream, hive, cmd, body string, opts ...jetstream.PublishOpt) *jetstream.PubAck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.Publish(ctx, "hive."+hive+".intake.worker."+cmd, []byte(body), opts...)
	if err != nil {
		t.Fatalf("publish %s: %v", cmd, err)
	}
	return ack
}

// storedResults returns every result HIVE_JOBS holds for job (normally one).
func storedResults(t testing.TB, js jetstream.JetStream, job string) []reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, consumer.JobsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"job." + job + ".result"}})
	if err != nil {
		t.Fatal(err)
	}
	var out []reply
	for n := c.CachedInfo().NumPending; n > 0; n-- {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read results of %s: %v", job, err)
		}
		var r reply
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatalf("stored result is not JSON: %v: %s", err, m.Data())
		}
		r.raw = m.Data()
		out = append(out, r)
	}
	return out
}

// waitStored waits until HIVE_JOBS holds a result for each job, failing after 60 s.
func waitStored(t testing.TB, js jetstream.JetStream, jobs ...string) map[string]reply {
	t.Helper()
	out := map[string]reply{}
	deadline := time.Now().Add(60 * time.Second)
	stream, err := js.Stream(context.Background(), consumer.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		for {
			m, err := stream.GetLastMsgForSubject(context.Background(), "job."+j+".result")
			if err == nil {
				var r reply
				json.Unmarshal(m.Data, &r)
				r.raw = m.Data
				out[j] = r
				break
			}
			if !errors.Is(err, jetstream.ErrMsgNotFound) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				t.Logf("read result of %s: %v", j, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no stored result for job %s after 60s (have %d of %d)", j, len(out), len(jobs))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// waitDrained waits until the hive's intake holds no command, failing after 60 s.
func waitDrained(t testing.TB, js jetstream.JetStream, hive string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := js.Stream(context.Background(), consumer.IntakeStream)
		if err == nil {
			si, err := info.Info(context.Background(), jetstream.WithSubjectFilter("hive."+hive+".intake.>"))
			if err == nil && len(si.State.Subjects) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("intake of %s still holds commands after 60s", hive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func spawnBody(job, worker, extra string) string {
	return fmt.Sprintf(`{"job_id":%q,"command_id":%q,"worker_id":%q,"model_id":"m","device":"cpu","wait":"exec"%s}`, job, "c-"+job, worker, extra)
}
