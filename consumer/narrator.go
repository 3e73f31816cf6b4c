package consumer

import (
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// job numbers the narration events of one job id. Commands that share a
// job id (and a spawned worker's later exit) share one sequence.
type job struct {
	id   string
	mu   sync.Mutex // held while numbering and publishing, so seq order is wire order
	seq  uint64
	refs int
}

// jobs holds the sequence of every job with a command in flight or a
// worker this agent started still running; the rest are forgotten.
type jobs struct {
	mu sync.Mutex
	m  map[string]*job
}

func (js *jobs) acquire(id string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.m == nil {
		js.m = map[string]*job{}
	}
	j := js.m[id]
	if j == nil {
		j = &job{id: id}
		js.m[id] = j
	}
	j.refs++
	return j
}

// continueAfter makes the job's next event seq+1 unless it is past that
// already: a redelivered command goes on numbering where its stored
// narration ends.
func (j *job) continueAfter(seq uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq = max(j.seq, seq)
}

func (js *jobs) release(j *job) {
	js.mu.Lock()
	defer js.mu.Unlock()
	j.refs--
	if j.refs == 0 {
		delete(js.m, j.id)
	}
}

// narrator publishes the events of one command on its job's subject.
type narrator struct {
	nc        *nats.Conn
	out       *outbox // stores the events in the fleet layout (fleet.go)
	log       *slog.Logger
	hiveID    string
	commandID string
	job       *job
}

var _ commands.Narrator = (*narrator)(nil)

// narrator returns the narrator of one command (or worker) on job j.
func (c *Consumer) narrator(j *job, commandID string) *narrator {
	return &narrator{nc: c.nc, out: c.out, log: c.log, hiveID: c.cfg.HiveID, commandID: commandID, job: j}
}

// Narrate publishes one progress event.
func (n *narrator) Narrate(action, level, human string, f commands.Fields) {
	n.publish(wire.Event{Action: action, Level: level, Human: human, WorkerID: f.WorkerID, PID: f.PID})
}

func (n *narrator) publish(e wire.Event) {
	subj, err := subjects.JobNarration(n.job.id)
	if err != nil {
		n.log.Error("narration subject", "job_id", n.job.id, "err", err)
		return
	}
	n.job.mu.Lock()
	defer n.job.mu.Unlock()
	n.job.seq++
	e.Seq = n.job.seq
	e.TS = wire.EventTime{Time: time.Now()}
	e.HiveID, e.JobID, e.CommandID, e.Actor = n.hiveID, n.job.id, n.commandID, wire.Actor
	body, err := json.Marshal(e)
	if err == nil {
		err = n.nc.Publish(subj, body)
	}
	if err == nil && n.out != nil {
		n.out.mirror(&nats.Msg{Subject: subj, Data: body})
	}
	if err != nil {
		n.log.Warn("publish narration", "subject", subj, "action", e.Action, "err", err)
	}
}
