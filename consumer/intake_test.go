package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// Commands published while no agent runs are all run, each once, when it
// starts; a body that cannot be decoded gets bad_request and is not
// delivered again.
func TestIntake_QueuedBeforeAgentRunOnce(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	hive := testenv.HiveID(t)
	setup(t, js, hive)
	watcher, _ := jsOf(t, s)
	results := make(chan *nats.Msg, 100)
	sub, err := watcher.ChanSubscribe("job.*.result", results)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	watcher.Flush()

	var jobs []string
	for i := range 4 {
		job := fmt.Sprintf("q-spawn-%d", i)
		publish(t, js, hive, "spawn", spawnBody(job, fmt.Sprintf("w%d", i), ""))
		jobs = append(jobs, job)
	}
	publish(t, js, hive, "list", `{"job_id":"q-list"}`)
	publish(t, js, hive, "spawn", `{"job_id":"q-bad","model_id":5,"device":"cpu"}`)
	publish(t, js, hive, "reboot", `{"job_id":"q-unknown"}`)
	// No ids at all: derived from the stream sequence, the same at every delivery.
	noIDs := publish(t, js, hive, "list", ``)
	publish(t, js, hive, "list", `not json`)
	jobs = append(jobs, "q-list", "q-bad", "q-unknown", fmt.Sprintf("intake-%d", noIDs.Sequence))

	a := startAgent(t, s, onHive(hive), withJetStream(true))
	got := waitStored(t, js, jobs...)
	waitDrained(t, js, hive)
	for _, j := range jobs[:4] {
		if !got[j].OK {
			t.Errorf("%s: %s", j, got[j].raw)
		}
	}
	if r := got["q-bad"]; r.OK || r.Error.Code != wire.CodeBadRequest || r.Error.Field != "model_id" {
		t.Errorf("bad body: got %s, want bad_request on model_id", r.raw)
	}
	if r := got["q-unknown"]; r.OK || r.Error.Code != wire.CodeUnknownCommand {
		t.Errorf("unknown command: got %s, want unknown_command", r.raw)
	}
	// Nine commands, nine results on the wire (the non-JSON one under job id intake-<seq>).
	watcher.Flush()
	time.Sleep(200 * time.Millisecond) // a duplicate would be on its way
	if len(results) != 9 {
		t.Errorf("got %d results published, want 9", len(results))
	}
	var list wire.ListResult
	a.must(t, "list", "", &list)
	if len(list.Workers) != 4 {
		t.Errorf("got %d workers, want 4", len(list.Workers))
	}
	for _, j := range jobs {
		if rs := storedResults(t, js, j); len(rs) != 1 {
			t.Errorf("job %s: %d stored results, want 1", j, len(rs))
		}
	}
	for i := range 4 {
		a.must(t, "delete", fmt.Sprintf(`{"worker_id":"w%d","grace_ms":1000}`, i), nil)
	}
}

// A spawn then a delete of one worker, published back to back many times,
// always run in that order; request/reply keeps answering meanwhile.
func TestIntake_SpawnDeleteNeverReordered(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	a := startAgent(t, s, withJetStream(true))
	const cycles = 50
	var jobs []string
	for i := range cycles {
		sj, dj := fmt.Sprintf("s%d", i), fmt.Sprintf("d%d", i)
		publish(t, js, a.hive, "spawn", spawnBody(sj, "w", ""))
		publish(t, js, a.hive, "delete", fmt.Sprintf(`{"job_id":%q,"worker_id":"w","grace_ms":2000}`, dj))
		// Other workers at the same time, in their own lanes.
		if i%10 == 0 {
			other := fmt.Sprintf("o%d", i)
			publish(t, js, a.hive, "spawn", spawnBody(other, "other-"+other, ""))
			publish(t, js, a.hive, "delete", fmt.Sprintf(`{"job_id":"x%s","worker_id":"other-%s","grace_ms":2000}`, other, other))
			jobs = append(jobs, other, "x"+other)
		}
		jobs = append(jobs, sj, dj)
	}
	a.stillServes(t)
	got := waitStored(t, js, jobs...)
	for _, j := range jobs {
		if r := got[j]; !r.OK {
			t.Errorf("job %s: %s (a reorder shows as not_found or conflict)", j, r.raw)
		}
	}
	waitDrained(t, js, a.hive)
	a.stillServes(t)
}

// A duplicate publish with the same Nats-Msg-Id is dropped by the stream:
// one command, one worker.
func TestIntake_DuplicateMsgIDDropped(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	a := startAgent(t, s, withJetStream(true))
	body := `{"model_id":"m","device":"cpu","wait":"exec"}`
	first := publish(t, js, a.hive, "spawn", body, jetstream.WithMsgID("cmd-dup-1"))
	second := publish(t, js, a.hive, "spawn", body, jetstream.WithMsgID("cmd-dup-1"))
	if first.Duplicate || !second.Duplicate || first.Sequence != second.Sequence {
		t.Fatalf("got acks %+v and %+v, want the second one a duplicate of the first", first, second)
	}
	// The Nats-Msg-Id became the command and job id.
	got := waitStored(t, js, "cmd-dup-1")["cmd-dup-1"]
	if !got.OK || got.CommandID != "cmd-dup-1" {
		t.Fatalf("got %s", got.raw)
	}
	var res wire.SpawnResult
	json.Unmarshal(got.Result, &res)
	var list wire.ListResult
	a.must(t, "list", "", &list)
	if len(list.Workers) != 1 || list.Workers[0].WorkerID != res.WorkerID {
		t.Fatalf("got workers %+v, want only %s", list.Workers, res.WorkerID)
	}
	a.must(t, "delete", fmt.Sprintf(`{"worker_id":%q,"grace_ms":1000}`, res.WorkerID), nil)
}

// deadAgent takes n intake commands of hive and never acknowledges them,
// as an agent killed mid-way would.
func deadAgent(t *testing.T, js jetstream.JetStream, hive string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, consumer.IntakeStream, consumer.ConsumerName(hive))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range batch.Messages() {
		got++
	}
	if got != n {
		t.Fatalf("dead agent took %d commands, want %d", got, n)
	}
}

// Commands an agent took and never acknowledged are delivered again to the
// next one, in order per worker, and do their work once: the spawn finds
// the worker the first delivery started, the delete of a worker already
// gone ends ok, and a command whose result is stored is only acknowledged.
func TestIntake_RedeliveredCommandsDoWorkOnce(t *testing.T) {
	s := jsServer(t, "", 0)
	nc, js := jsOf(t, s)
	hive := testenv.HiveID(t)
	setup(t, js, hive)

	// The first agent started w1 for command c-r1 and died before storing
	// the result. (Here it is started through request/reply, under another
	// job id, so that HIVE_JOBS holds no result of job r1.)
	first := startAgent(t, s, onHive(hive))
	first.must(t, "spawn", `{"job_id":"r1-first","command_id":"c-r1","worker_id":"w1","model_id":"m","device":"cpu","wait":"exec"}`, nil)

	publish(t, js, hive, "spawn", spawnBody("r1", "w1", ""))
	publish(t, js, hive, "delete", `{"job_id":"r2","command_id":"c-r2","worker_id":"w1","grace_ms":2000}`)
	publish(t, js, hive, "delete", `{"job_id":"r3","command_id":"c-r3","worker_id":"gone","grace_ms":2000}`)
	publish(t, js, hive, "list", `{"job_id":"r4","command_id":"c-r4"}`)
	// r4's result is stored already: the dead agent got that far.
	stored := `{"ok":true,"kind":"worker.list","hive_id":"` + hive + `","job_id":"r4","command_id":"c-r4","result":{"workers":[]}}`
	if _, err := js.Publish(context.Background(), "job.r4.result", []byte(stored)); err != nil {
		t.Fatal(err)
	}
	deadAgent(t, js, hive, 4)
	narr := make(chan *nats.Msg, 64)
	sub, _ := nc.ChanSubscribe("job.r4.narration", narr)
	defer sub.Unsubscribe()

	startAgent(t, s, onHive(hive), withJetStream(true))
	got := waitStored(t, js, "r1", "r2", "r3")
	waitDrained(t, js, hive)

	var spawn wire.SpawnResult
	json.Unmarshal(got["r1"].Result, &spawn)
	if !got["r1"].OK || !spawn.Existing {
		t.Errorf("redelivered spawn: got %s, want ok with existing true", got["r1"].raw)
	}
	var del wire.DeleteResult
	json.Unmarshal(got["r2"].Result, &del)
	if !got["r2"].OK || del.Signal == "" {
		t.Errorf("delete after the redelivered spawn: got %s, want the worker stopped", got["r2"].raw)
	}
	var gone wire.AlreadyStoppedResult
	json.Unmarshal(got["r3"].Result, &gone)
	if !got["r3"].OK || !gone.AlreadyStopped || gone.Note == "" {
		t.Errorf("redelivered delete of a worker that is gone: got %s, want ok with already_stopped", got["r3"].raw)
	}
	for _, j := range []string{"r1", "r2", "r3", "r4"} {
		if rs := storedResults(t, js, j); len(rs) != 1 {
			t.Errorf("job %s: %d stored results, want 1", j, len(rs))
		}
	}
	if len(narr) != 0 {
		t.Errorf("job r4 had its result stored, yet the agent narrated it again")
	}
}

// A result is read from HIVE_JOBS after the fact, and followed live, with
// the client API.
func TestIntake_StoredOutcomeThroughClient(t *testing.T) {
	s := jsServer(t, "", 0)
	nc, js := jsOf(t, s)
	a := startAgent(t, s, withJetStream(true))
	cl := client.New(nc, client.WithTimeout(30*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, _, err := cl.StoredJob(ctx, "nothing-here"); !errors.Is(err, client.ErrJobNotStored) {
		t.Fatalf("unknown job: got %v, want ErrJobNotStored", err)
	}
	// Followed before it is sent: stored narration first, then live.
	var live []client.Event
	done := make(chan error, 1)
	go func() {
		_, err := cl.WatchJob(ctx, "oc1", func(e client.Event) { live = append(live, e) })
		done <- err
	}()
	publish(t, js, a.hive, "spawn", spawnBody("oc1", "w-oc", ""))
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
	evs, res, err := cl.StoredJob(ctx, "oc1")
	if err != nil || res == nil || !res.OK || res.Kind != wire.KindSpawn {
		t.Fatalf("stored job: %v %+v", err, res)
	}
	if len(evs) < 3 || !strings.HasSuffix(evs[0].Action, "_start") || !evs[len(evs)-1].End() {
		t.Fatalf("stored narration: %+v", evs)
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
	}
	if len(live) != len(evs) {
		t.Errorf("watch saw %d events, stored %d", len(live), len(evs))
	}
	// A failed result is a result too.
	publish(t, js, a.hive, "delete", `{"job_id":"oc2","worker_id":"nobody"}`)
	r, err := cl.WatchJob(ctx, "oc2", nil)
	if !client.IsCode(err, wire.CodeNotFound) || r.JobID != "oc2" {
		t.Fatalf("watch failed job: got %v %+v, want not_found", err, r)
	}
	a.must(t, "delete", `{"worker_id":"w-oc","grace_ms":1000}`, nil)
}

// Without JetStream on the server the agent serves request/reply as before;
// when JetStream is required it refuses to start.
func TestIntake_NoJetStreamLeavesRequestReply(t *testing.T) {
	s := testenv.NATS(t)
	a := startAgent(t, s, withJetStream(false))
	a.stillServes(t)
	r := a.req(t, "delete", `{"worker_id":"nope"}`)
	wantError(t, r, wire.CodeNotFound, "")

	var err error
	startAgent(t, s, withJetStream(true), func(o *agentOpts) { o.startErr = &err })
	if !errors.Is(err, consumer.ErrNoJetStream) {
		t.Fatalf("required JetStream on a server without it: got %v, want ErrNoJetStream", err)
	}
}

// With JetStream on the server but intake off, nothing is created and
// request/reply answers as before.
func TestIntake_OffCreatesNothing(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	a := startAgent(t, s)
	a.stillServes(t)
	names := js.StreamNames(context.Background())
	for n := range names.Name() {
		t.Errorf("stream %s exists; intake off must create none", n)
	}
}

// An existing stream the agent cannot use is reported, not changed, and
// the agent serves request/reply (or, when JetStream is required, stops).
func TestIntake_ConflictingStreamReported(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: consumer.IntakeStream, Subjects: []string{"hive.*.intake.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := consumer.SetupStreams(ctx, js, "h1", testStreams, true)
	if !errors.Is(err, consumer.ErrConflict) || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("got %v, want a retention conflict", err)
	}
	a := startAgent(t, s, withJetStream(false))
	a.stillServes(t)
	var serr error
	startAgent(t, s, withJetStream(true), func(o *agentOpts) { o.startErr = &serr })
	if !errors.Is(serr, consumer.ErrConflict) {
		t.Fatalf("required: got %v, want ErrConflict", serr)
	}
	st, _ := js.Stream(ctx, consumer.IntakeStream)
	if st.CachedInfo().Config.Retention != jetstream.LimitsPolicy {
		t.Fatal("the conflicting stream was changed")
	}
	// Without permission to create, missing streams are an error naming the flag.
	s2 := jsServer(t, "", 0)
	_, js2 := jsOf(t, s2)
	if _, err := consumer.SetupStreams(ctx, js2, "h1", testStreams, false); err == nil || !strings.Contains(err.Error(), "--jetstream-create=false") {
		t.Fatalf("no create: got %v", err)
	}
}

// Commands queued while the server restarts (with its store) are run once
// the agent is back, and so are those sent after it reconnected.
func TestIntake_ServerRestartWithQueuedCommands(t *testing.T) {
	dir := t.TempDir()
	s := jsServer(t, dir, 0)
	port := s.Addr().(*net.TCPAddr).Port
	url := s.ClientURL()
	hive := testenv.HiveID(t)
	nc, js := jsOf(t, s)
	setup(t, js, hive)
	publish(t, js, hive, "spawn", spawnBody("sr1", "w-sr1", ""))
	publish(t, js, hive, "list", `{"job_id":"sr2"}`)
	nc.Close()

	s.Shutdown()
	s.WaitForShutdown()
	s = jsServer(t, dir, port)
	_, js = jsOf(t, s)
	a := startAgent(t, s, onHive(hive), withJetStream(true), func(o *agentOpts) { o.url = url })
	waitStored(t, js, "sr1", "sr2")

	// Restart under the running agent; it reconnects and goes on.
	s.Shutdown()
	s.WaitForShutdown()
	s = jsServer(t, dir, port)
	_, js = jsOf(t, s)
	publish(t, js, hive, "delete", `{"job_id":"sr3","worker_id":"w-sr1","grace_ms":1000}`)
	got := waitStored(t, js, "sr3")
	if !got["sr3"].OK {
		t.Fatalf("delete after the restart: %s", got["sr3"].raw)
	}
	waitDrained(t, js, hive)
	for _, j := range []string{"sr1", "sr2", "sr3"} {
		if rs := storedResults(t, js, j); len(rs) != 1 {
			t.Errorf("job %s: %d stored results, want 1", j, len(rs))
		}
	}
	a.close() // before the last server goes
}
