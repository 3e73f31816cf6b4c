package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// resultWatch collects the job ids of the results published on job.*.result.
type resultWatch struct {
	mu   sync.Mutex
	jobs map[string]int
}

func watchResults(t *testing.T, nc *nats.Conn) *resultWatch {
	t.Helper()
	w := &resultWatch{jobs: map[string]int{}}
	sub, err := nc.Subscribe("job.*.result", func(m *nats.Msg) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.jobs[strings.TrimSuffix(strings.TrimPrefix(m.Subject, "job."), ".result")]++
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	nc.Flush()
	return w
}

// waitAll waits until a result of each job was published, failing after 60 s.
func (w *resultWatch) waitAll(t *testing.T, jobs ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		w.mu.Lock()
		missing := 0
		for _, j := range jobs {
			if w.jobs[j] == 0 {
				missing++
			}
		}
		w.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d results never published after 60s", missing, len(jobs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statsData is the agent's custom stats data of endpoint worker.list.
func statsData(t *testing.T, a *agent) wire.StatsData {
	t.Helper()
	msg, err := a.client.Request("$SRV.STATS.hive-agent", nil, 5*time.Second)
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
		t.Fatal(err)
	}
	for _, e := range st.Endpoints {
		if e.Name == "list" {
			return e.Data
		}
	}
	t.Fatalf("no list endpoint in %s", msg.Data)
	return wire.StatsData{}
}

// A HIVE_JOBS that refuses writes (full, discard new) does not wedge the
// intake: every command is run, its result published and the command
// acknowledged, the refusals counted; later commands still run.
func TestIntake_FullJobsStreamDoesNotWedge(t *testing.T) {
	s := jsServer(t, "", 0)
	nc, js := jsOf(t, s)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: consumer.JobsStream, Subjects: []string{"job.>"},
		Storage: jetstream.FileStorage, MaxBytes: 64 << 10, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	results := watchResults(t, nc)
	a := startAgent(t, s, withJetStream(true))
	var jobs []string
	for k := range 200 {
		job := fmt.Sprintf("full-%d", k)
		publish(t, js, a.hive, "list", "", jetstream.WithMsgID(job))
		jobs = append(jobs, job)
	}
	results.waitAll(t, jobs...)
	waitDrained(t, js, a.hive) // all 200 acknowledged
	if n := statsData(t, a).ResultsNotStored; n == 0 {
		t.Errorf("results_not_stored is 0; HIVE_JOBS (64 KiB, discard new) cannot have stored 200 results")
	}
	// Later commands run: a spawn and its delete through the intake.
	publish(t, js, a.hive, "spawn", spawnBody("full-spawn", "w-full", ""))
	publish(t, js, a.hive, "delete", `{"job_id":"full-del","worker_id":"w-full","grace_ms":1000}`)
	results.waitAll(t, "full-spawn", "full-del")
	waitDrained(t, js, a.hive)
	a.stillServes(t)
	if got := testenv.Marked(a.hive); len(got) != 0 {
		t.Errorf("processes left: %v", got)
	}
}

// A body that cannot be decoded answers bad_request under the job id of
// its Nats-Msg-Id, so `hive-agent job <Nats-Msg-Id>` finds it; without
// a usable Nats-Msg-Id, under intake-<stream sequence>.
func TestIntake_UndecodableBodyUnderItsMsgID(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	a := startAgent(t, s, withJetStream(true))
	publish(t, js, a.hive, "spawn", `not json`, jetstream.WithMsgID("undec-1"))
	publish(t, js, a.hive, "list", `[1,2]`, jetstream.WithMsgID("undec-2"))
	noID := publish(t, js, a.hive, "get", "\xff\xfe", jetstream.WithMsgID("not a token"))
	seqJob := fmt.Sprintf("intake-%d", noID.Sequence)
	got := waitStored(t, js, "undec-1", "undec-2", seqJob)
	for job, r := range got {
		if r.OK || r.Error.Code != wire.CodeBadRequest || r.JobID != job || r.CommandID != job {
			t.Errorf("job %s: got %s, want bad_request with job_id and command_id %s", job, r.raw, job)
		}
	}
	waitDrained(t, js, a.hive)
	a.stillServes(t)
}

// Deleting the intake consumer while the agent runs: the agent creates it
// again and runs the commands published afterwards.
func TestIntake_DeletedConsumerIsCreatedAgain(t *testing.T) {
	s := jsServer(t, "", 0)
	_, js := jsOf(t, s)
	a := startAgent(t, s, withJetStream(true))
	publish(t, js, a.hive, "list", `{"job_id":"before-del"}`)
	waitStored(t, js, "before-del")
	if err := js.DeleteConsumer(context.Background(), consumer.IntakeStream, consumer.ConsumerName(a.hive)); err != nil {
		t.Fatal(err)
	}
	var jobs []string
	for k := range 5 {
		job := fmt.Sprintf("after-del-%d", k)
		publish(t, js, a.hive, "list", fmt.Sprintf(`{"job_id":%q}`, job))
		jobs = append(jobs, job)
	}
	got := waitStored(t, js, jobs...)
	for _, j := range jobs {
		if !got[j].OK {
			t.Errorf("job %s: %s", j, got[j].raw)
		}
	}
	waitDrained(t, js, a.hive)
	if rs := storedResults(t, js, "before-del"); len(rs) != 1 {
		t.Errorf("before-del: %d stored results, want 1 (run once)", len(rs))
	}
	a.stillServes(t)
}
