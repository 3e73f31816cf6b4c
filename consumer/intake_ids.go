package consumer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// intakeIDs are an intake command's ids, the same at every delivery.
type intakeIDs struct {
	// body is the command with the ids it lacked filled in.
	body                       []byte
	jobID, commandID, workerID string
	// undecodable: the body is no JSON object, so the ids could not be
	// filled in; the run uses jobID and commandID for its bad_request.
	undecodable bool
}

// idsOf fills in the ids a stored command left out, derived from the
// message so that every delivery of it gets the same ones (a generated id
// would make a redelivered spawn start a second worker): command_id is the
// Nats-Msg-Id when that is a valid token, else intake-<stream sequence>;
// job_id is the command_id; a spawn's worker_id is worker- plus 8 hex of
// the command_id's SHA-256. A body that is not a JSON object is left as it
// is: Decode answers it with bad_request, under the ids of its first JSON
// object when it has valid ones, else the derived ones (undecodableIDs).
func idsOf(kind string, data []byte, h nats.Header, seq uint64) intakeIDs {
	ids := intakeIDs{body: data}
	body := bytes.TrimSpace(data)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if len(body) > commands.MaxBodyBytes || body[0] != '{' || !json.Valid(body) {
		return undecodableIDs(data, h, seq)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return ids
	}
	str := func(key string) (string, bool) {
		raw, ok := top[key]
		if !ok || string(raw) == "null" {
			return "", false
		}
		var s string
		if json.Unmarshal(raw, &s) != nil || subjects.ValidToken(s) != nil {
			return "", true // present but invalid: Decode says so
		}
		return s, true
	}
	var add []string
	fill := func(key, value string) {
		v, _ := json.Marshal(value)
		add = append(add, strconv.Quote(key)+":"+string(v))
	}
	cmdID, present := str("command_id")
	if !present {
		cmdID = derivedCommandID(h, seq)
		fill("command_id", cmdID)
	}
	jobID, present := str("job_id")
	if !present && cmdID != "" {
		jobID = cmdID
		fill("job_id", jobID)
	}
	workerID, present := str("worker_id")
	if !present && kind == wire.KindSpawn && cmdID != "" {
		sum := sha256.Sum256([]byte(cmdID))
		workerID = "worker-" + hex.EncodeToString(sum[:4])
		fill("worker_id", workerID)
	}
	ids.jobID, ids.commandID, ids.workerID = jobID, cmdID, workerID
	if len(add) > 0 {
		rest := bytes.TrimSpace(body[1:])
		sep := ","
		if rest[0] == '}' {
			sep = ""
		}
		ids.body = []byte("{" + strings.Join(add, ",") + sep + string(rest))
	}
	return ids
}

// derivedCommandID is the Nats-Msg-Id when it is a valid token, else
// intake-<stream sequence>.
func derivedCommandID(h nats.Header, seq uint64) string {
	if id := h.Get(jetstream.MsgIDHeader); subjects.ValidToken(id) == nil {
		return id
	}
	return "intake-" + strconv.FormatUint(seq, 10)
}

// undecodableIDs are the ids of a body that is no JSON object: those its
// first JSON object carries when valid (as Decode's best effort reads
// them), else the derived command id, which is also the job id; so
// `hive-agent job <Nats-Msg-Id>` finds its bad_request.
func undecodableIDs(data []byte, h nats.Header, seq uint64) intakeIDs {
	ids := intakeIDs{body: data, undecodable: true}
	var raw struct {
		JobID     any `json:"job_id"`
		CommandID any `json:"command_id"`
	}
	if len(data) <= commands.MaxBodyBytes && json.NewDecoder(bytes.NewReader(data)).Decode(&raw) == nil {
		ids.jobID, ids.commandID = validString(raw.JobID), validString(raw.CommandID)
	}
	if ids.commandID == "" {
		ids.commandID = derivedCommandID(h, seq)
	}
	if ids.jobID == "" {
		ids.jobID = ids.commandID
	}
	return ids
}

func validString(v any) string {
	if s, ok := v.(string); ok && subjects.ValidToken(s) == nil {
		return s
	}
	return ""
}
