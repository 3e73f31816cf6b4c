package main

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/subjects"
)

// maxIntakeScan bounds how many queued intake commands `job` reads when it
// looks for one; a backlog beyond it is not searched.
const maxIntakeScan = 10_000

// queuedCommand is an intake command not yet taken by an agent.
type queuedCommand struct {
	Subject string
	Seq     uint64
}

// findQueued looks in HIVE_INTAKE (work-queue retention: what is there has
// not been acknowledged) for the command of job jobID, the job id an
// agent gives it: its job_id, else its command_id, else its Nats-Msg-Id,
// else intake-<sequence>. ok is false when it is not there, or there is
// no intake stream.
func findQueued(ctx context.Context, nc *nats.Conn, jobID string) (q queuedCommand, ok bool) {
	js, err := jetstream.New(nc)
	if err != nil {
		return q, false
	}
	stream, err := js.Stream(ctx, consumer.IntakeStream)
	if err != nil {
		return q, false
	}
	// A work-queue stream admits no second consumer beside the hives'
	// ones: read the messages one by one.
	info, err := stream.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return q, false
	}
	last := min(info.State.LastSeq, info.State.FirstSeq+maxIntakeScan-1)
	for seq := info.State.FirstSeq; seq <= last && ctx.Err() == nil; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			continue // acknowledged (deleted) since
		}
		if intakeJobID(m.Data, m.Header, seq) == jobID {
			return queuedCommand{Subject: m.Subject, Seq: seq}, true
		}
	}
	return q, false
}

// intakeJobID is the job id the agent will give an intake command
// (consumer/intake_ids.go).
func intakeJobID(data []byte, h nats.Header, seq uint64) string {
	var ids struct {
		JobID     *string `json:"job_id"`
		CommandID *string `json:"command_id"`
	}
	json.Unmarshal(data, &ids)
	if ids.JobID != nil {
		return *ids.JobID
	}
	if ids.CommandID != nil {
		return *ids.CommandID
	}
	if id := h.Get(jetstream.MsgIDHeader); subjects.ValidToken(id) == nil {
		return id
	}
	return "intake-" + strconv.FormatUint(seq, 10)
}
