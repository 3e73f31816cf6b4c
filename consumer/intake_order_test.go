package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/wire"
)

// hangingSpawn is a spawn whose worker never gets ready and whose wait
// would last two minutes.
func hangingSpawn(job, worker string) string {
	return fmt.Sprintf(`{"job_id":%q,"command_id":%q,"worker_id":%q,"model_id":"m@no-health","device":"cpu","wait":"ready","wait_timeout_ms":120000}`,
		job, "c-"+job, worker)
}

// waitWorkers waits until the hive runs n workers, failing after 60 s,
// and returns the list that showed them.
func waitWorkers(t *testing.T, a *agent, n int) wire.ListResult {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list wire.ListResult
		a.must(t, "list", "", &list)
		if len(list.Workers) == n {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("hive runs %d workers after 60s, want %d", len(list.Workers), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// notStored fails the test when HIVE_JOBS holds a result of job.
func notStored(t *testing.T, js jetstream.JetStream, job string) {
	t.Helper()
	stream, err := js.Stream(context.Background(), consumer.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.GetLastMsgForSubject(context.Background(), "job."+job+".result"); err == nil {
		t.Fatalf("job %s has a result already: %s", job, m.Data)
	}
}

// An intake delete of a worker whose spawn waits for it to be ready ends
// that wait (the spawn answers worker_exited naming the delete's job) and
// runs at once, not after the spawn's timeout.
func TestIntake_DeleteEndsWaitingSpawn(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	a := startAgent(t, s, withJetStream(true))
	publish(t, js, a.hive, "spawn", hangingSpawn("hs-1", "w-hs"))
	waitWorkers(t, a, 1)
	publish(t, js, a.hive, "delete", `{"job_id":"hs-del","worker_id":"w-hs","grace_ms":1000}`)
	got := waitStored(t, js, "hs-1", "hs-del")
	if r := got["hs-del"]; !r.OK {
		t.Errorf("delete: got %s, want ok", r.raw)
	}
	r := got["hs-1"]
	if r.OK || r.Error.Code != wire.CodeWorkerExited || !strings.Contains(r.Error.Message, "deleted by job hs-del") {
		t.Errorf("spawn: got %s, want worker_exited naming job hs-del", r.raw)
	}
	waitDrained(t, js, a.hive)
	waitWorkers(t, a, 0)
}

// Spawns that hang in their wait hold every intake slot; list, and a get
// of a waiting worker, still run at once; deletes end the waits.
func TestIntake_ReadsPassHangingSpawns(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	a := startAgent(t, s, withJetStream(true), func(o *agentOpts) { o.maxInFlight = 4 }) // 2 intake slots
	for k := range 3 {
		publish(t, js, a.hive, "spawn", hangingSpawn(fmt.Sprintf("hang-%d", k), fmt.Sprintf("w-hang-%d", k)))
	}
	running := waitWorkers(t, a, 2) // both slots taken; the third spawn waits for one
	// The get names a worker whose spawn took a slot (which two did is the
	// scheduler's choice): a get of the third would rightly wait behind
	// its spawn, which waits for a slot.
	publish(t, js, a.hive, "list", `{"job_id":"pass-list"}`)
	publish(t, js, a.hive, "get", fmt.Sprintf(`{"job_id":"pass-get","worker_id":%q}`, running.Workers[0].WorkerID))
	got := waitStored(t, js, "pass-list", "pass-get")
	var list wire.ListResult
	json.Unmarshal(got["pass-list"].Result, &list)
	if !got["pass-list"].OK || len(list.Workers) != 2 {
		t.Errorf("list: got %s, want ok with the 2 waiting workers", got["pass-list"].raw)
	}
	if !got["pass-get"].OK {
		t.Errorf("get of a waiting worker: got %s, want ok", got["pass-get"].raw)
	}
	for k := range 3 {
		notStored(t, js, fmt.Sprintf("hang-%d", k)) // they still wait
	}
	var dels []string
	for k := range 3 {
		del := fmt.Sprintf("hang-del-%d", k)
		publish(t, js, a.hive, "delete", fmt.Sprintf(`{"job_id":%q,"worker_id":"w-hang-%d","grace_ms":1000}`, del, k))
		dels = append(dels, del)
	}
	got = waitStored(t, js, append(dels, "hang-0", "hang-1", "hang-2")...)
	for _, d := range dels {
		if !got[d].OK {
			t.Errorf("%s: got %s, want ok", d, got[d].raw)
		}
	}
	waitDrained(t, js, a.hive)
	waitWorkers(t, a, 0)
}

// A spawn sent again with the same command_id while its worker still
// loads waits, as the first, until the worker is ready, and says so.
func TestConsumer_ResentSpawnWaitsLikeTheFirst(t *testing.T) {
	s := jsServer(t, "", 0)
	a := startAgent(t, s)
	body := `{"job_id":"resend-ready","command_id":"resend-ready","worker_id":"w-rr","model_id":"m@ready-after=3s","device":"cpu","wait":"ready"}`
	first := a.watch(t, "job.resend-ready.result")
	if err := a.client.Publish(a.subject("spawn"), []byte(body)); err != nil {
		t.Fatal(err)
	}
	waitWorkers(t, a, 1)
	var again wire.SpawnResult
	a.must(t, "spawn", body, &again)
	if !again.Existing || again.Wait != wire.WaitReady {
		t.Fatalf("resent spawn: got %+v, want existing with wait ready", again)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", again.Port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("resent spawn answered ready, yet /health answers %d", resp.StatusCode)
	}
	first.waitFor(t, "the first spawn's result", first.count(1))
	a.must(t, "delete", `{"worker_id":"w-rr","grace_ms":1000}`, nil)
}
