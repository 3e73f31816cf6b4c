package consumer_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/spawner"
)

var workerDir string

func TestMain(m *testing.M) {
	testenv.Main(m, func(dir string) error { workerDir = dir; return nil })
}

// agent is one hive-agent wired as cmd/hive-agent wires it, on its own
// NATS connection, plus a client connection for the test.
type agent struct {
	hive   string
	nc     *nats.Conn // the agent's own connection
	client *nats.Conn
	cons   *consumer.Consumer
	sp     *spawner.Spawner
	logDir string
	// lastRaw is free for a test to keep a raw reply in.
	lastRaw string
	// close stops the agent (once); it runs when the test ends, or earlier
	// when a test must stop it before servers it started later go.
	close func()
}

type agentOpts struct {
	hive        string
	workerDirs  []string
	maxInFlight int
	portMin     int
	portMax     int
	devices     spawner.DeviceProbe
	// restartBackoff is the spawner's first restart backoff; 0: its default.
	restartBackoff time.Duration
	// logDir, when set, is the agent's log directory (an earlier agent's,
	// to take over its restart records); default: a fresh one.
	logDir string
	// url and natsOpts, when set, are how the agent connects (the client
	// always connects to s directly).
	url      string
	natsOpts []nats.Option
	// clientOpts are added to the client's connection options.
	clientOpts []nats.Option
	// beforeStart runs once the client is connected, before the consumer starts.
	beforeStart func(*agent)
	// onLost and onBack run after the consumer's Disconnected and Reconnected.
	onLost, onBack func()
	// config, when set, changes the consumer's configuration (it gets the
	// agent's own connection, e.g. for a JetStream context).
	config func(*nats.Conn, *consumer.Config)
	// startErr, when set, receives Start's error instead of failing the test.
	startErr *error
	// gpu, when set, makes the agent's GPU policy (gpu_test.go).
	gpu func(a *agent) *commands.GPUPolicy
}

// startAgent starts an agent for a fresh hive (or opts.hive) on s. Every
// process of the hive must be gone when the test ends.
func startAgent(t testing.TB, s *server.Server, opt ...func(*agentOpts)) *agent {
	t.Helper()
	o := agentOpts{hive: testenv.HiveID(t), workerDirs: []string{workerDir}, portMin: 9400, portMax: 9599}
	for _, f := range opt {
		f(&o)
	}
	testenv.NoLeftovers(t, o.hive)
	if o.url == "" {
		o.url = s.ClientURL()
	}
	if o.logDir == "" {
		o.logDir = t.TempDir()
	}
	a := &agent{hive: o.hive, logDir: o.logDir}
	// Wired as cmd/hive-agent wires them.
	opts := append([]nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			a.cons.Disconnected(err)
			if o.onLost != nil {
				o.onLost()
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			a.cons.Reconnected()
			if o.onBack != nil {
				o.onBack()
			}
		}),
	}, o.natsOpts...)
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	a.nc = nc
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a.client, err = nats.Connect(s.ClientURL(), o.clientOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.client.Close)
	a.sp, err = spawner.New(spawner.Config{
		HiveID: o.hive, WorkerDirs: o.workerDirs, LogDir: a.logDir, PortMin: o.portMin, PortMax: o.portMax,
		Devices: o.devices, Logger: log, RestartBackoff: o.restartBackoff,
		OnStart:          func(w spawner.Worker) { a.cons.WorkerStarted(w) },
		OnExit:           func(w spawner.Worker, e spawner.Exit) { a.cons.WorkerExited(w, e) },
		OnPendingRestart: func(p spawner.PendingRestart) { a.cons.RestartPending(p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := consumer.Config{
		HiveID: o.hive, Version: "0.0.1", Spawner: a.sp, MaxInFlight: o.maxInFlight, Logger: log,
		Defaults: commands.Defaults{QueenURL: "http://localhost:7833", Wait: commands.WaitAlive,
			AliveWindow: 300 * time.Millisecond, ReadyTimeout: 10 * time.Second},
	}
	if o.gpu != nil {
		cfg.GPU = o.gpu(a)
		t.Cleanup(cfg.GPU.Close)
	}
	if o.config != nil {
		o.config(nc, &cfg)
	}
	a.cons, err = consumer.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.beforeStart != nil {
		o.beforeStart(a)
	}
	if err := a.cons.Start(context.Background()); err != nil {
		if o.startErr == nil {
			t.Fatal(err)
		}
		*o.startErr = err
	}
	var once sync.Once
	a.close = func() {
		once.Do(func() {
			testenv.Stop(o.hive) // workers a failed test left behind
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.sp.Close()
			if err := a.cons.Close(ctx); err != nil {
				t.Errorf("close consumer: %v", err)
			}
			nc.Close()
		})
	}
	t.Cleanup(a.close)
	return a
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// reply is a reply or job result as a client reads it.
type reply struct {
	OK        bool            `json:"ok"`
	Kind      string          `json:"kind"`
	HiveID    string          `json:"hive_id"`
	JobID     string          `json:"job_id"`
	CommandID string          `json:"command_id"`
	Result    json.RawMessage `json:"result"`
	Error     *commands.Error `json:"error"`
	raw       []byte
	headers   nats.Header
}

func (a *agent) subject(cmd string) string { return "hive." + a.hive + ".worker." + cmd }

// req sends body to hive.<hive>.worker.<cmd> and returns the decoded reply.
func (a *agent) req(t testing.TB, cmd, body string) reply {
	t.Helper()
	msg, err := a.client.Request(a.subject(cmd), []byte(body), 30*time.Second)
	if err != nil {
		t.Fatalf("request %s %.80s: %v", cmd, body, err)
	}
	var r reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatalf("reply to %s is not JSON: %v: %s", cmd, err, msg.Data)
	}
	r.raw, r.headers = msg.Data, msg.Header
	return r
}

// must is req that fails the test unless the reply is ok, decoding the result into v.
func (a *agent) must(t testing.TB, cmd, body string, v any) reply {
	t.Helper()
	r := a.req(t, cmd, body)
	if !r.OK {
		t.Fatalf("%s %s: got error %+v, want ok", cmd, body, r.Error)
	}
	if v != nil {
		if err := json.Unmarshal(r.Result, v); err != nil {
			t.Fatalf("%s result: %v: %s", cmd, err, r.Result)
		}
	}
	return r
}

// wantError asserts that the reply is the given error code (and field, when not empty).
func wantError(t testing.TB, r reply, code, field string) {
	t.Helper()
	if r.OK || r.Error == nil {
		t.Fatalf("got ok reply %s, want error %s", r.raw, code)
	}
	if r.Error.Code != code {
		t.Fatalf("got code %q (%s), want %q", r.Error.Code, r.Error.Message, code)
	}
	if field != "" && r.Error.Field != field {
		t.Fatalf("got field %q (%s), want %q", r.Error.Field, r.Error.Message, field)
	}
	if got := r.headers.Get("Nats-Service-Error-Code"); got != code {
		t.Errorf("Nats-Service-Error-Code header: got %q, want %q", got, code)
	}
}

// stillServes checks that the agent answers the next command.
func (a *agent) stillServes(t testing.TB) {
	t.Helper()
	var res commands.ListResult
	a.must(t, "list", "", &res)
}

// watch collects what is published on one subject.
type watch struct {
	mu   sync.Mutex
	msgs [][]byte
	cond chan struct{}
}

func (a *agent) watch(t testing.TB, subject string) *watch {
	t.Helper()
	w := &watch{cond: make(chan struct{}, 1)}
	sub, err := a.client.Subscribe(subject, func(m *nats.Msg) {
		w.mu.Lock()
		w.msgs = append(w.msgs, m.Data)
		w.mu.Unlock()
		select {
		case w.cond <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.client.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return w
}

// waitFor waits until done(messages) is true, failing after 20 s.
func (w *watch) waitFor(t testing.TB, what string, done func([][]byte) bool) [][]byte {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		w.mu.Lock()
		msgs := append([][]byte(nil), w.msgs...)
		w.mu.Unlock()
		if done(msgs) {
			return msgs
		}
		select {
		case <-w.cond:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; got %d messages: %s", what, len(msgs), joinMsgs(msgs))
		}
	}
}

// snapshot returns what was received so far.
func (w *watch) snapshot() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.msgs...)
}

func (w *watch) count(n int) func([][]byte) bool {
	return func(m [][]byte) bool { return len(m) >= n }
}

func joinMsgs(msgs [][]byte) string {
	var b strings.Builder
	for _, m := range msgs {
		b.Write(m)
		b.WriteByte('\n')
	}
	return b.String()
}

func events(t testing.TB, msgs [][]byte) []consumer.Event {
	t.Helper()
	out := make([]consumer.Event, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m, &out[i]); err != nil {
			t.Fatalf("narration event %d is not JSON: %v: %s", i, err, m)
		}
	}
	return out
}

// endOf returns whether msgs holds a command's end event (one with ok set).
func hasEnd(t testing.TB) func([][]byte) bool {
	return func(msgs [][]byte) bool {
		for _, e := range events(t, msgs) {
			if e.OK != nil {
				return true
			}
		}
		return false
	}
}

// checkNarration asserts the contract of one command's narration: seq 1, 2,
// 3… without gaps, every field set, a first event whose action ends in
// _start and a last (end) event with ok set.
func checkNarration(t testing.TB, evs []consumer.Event, hive, job string) {
	t.Helper()
	if len(evs) < 2 {
		t.Fatalf("got %d narration events, want at least a start and an end", len(evs))
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d: seq %d, want %d", i, e.Seq, i+1)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.TS); err != nil || len(e.TS) < len("2006-01-02T15:04:05.000000000Z") {
			t.Errorf("event %d: ts %q is not RFC 3339 with nanoseconds", i, e.TS)
		}
		if e.HiveID != hive || e.JobID != job || e.Actor != "hive-agent" || e.CommandID == "" || e.Human == "" {
			t.Errorf("event %d: missing or wrong fields: %+v", i, e)
		}
		switch e.Level {
		case "info", "warn", "error":
		default:
			t.Errorf("event %d: level %q", i, e.Level)
		}
	}
	if !strings.HasSuffix(evs[0].Action, "_start") {
		t.Errorf("first action %q, want one ending in _start", evs[0].Action)
	}
	end := evs[len(evs)-1]
	if end.OK == nil {
		t.Errorf("last event %q has no ok", end.Action)
	}
	if end.OK != nil && !*end.OK && end.Error == nil {
		t.Errorf("failed end event has no error")
	}
	for _, e := range evs[:len(evs)-1] {
		if e.OK != nil {
			t.Errorf("event %d (%s) before the end has ok set", e.Seq, e.Action)
		}
	}
}

func actions(evs []consumer.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Action
	}
	return out
}
