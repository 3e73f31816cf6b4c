package wire_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/wire"
)

// example is one JSON body shown in the docs.
type example struct {
	where string // file:line
	line  string // the line it starts on, for what precedes it
	body  []byte
}

// agentFile matches the command line that prints one of the agent's own
// files (the drain state, the start lock's record of workers): their JSON
// is no wire body.
var agentFile = regexp.MustCompile(`^\$ .*(/drain/[^ ]+\.json|start\.lock\.workers)`)

// requestSubject finds the command of a body sent with nats req/pub.
var requestSubject = regexp.MustCompile(`hive\.[^.\s]+\.(?:intake\.)?worker\.(\w+) '$`)

// examples finds every JSON object in the code blocks of the docs and the
// README: lines that start with "{", and bodies of nats req/pub.
func examples(t *testing.T) []example {
	t.Helper()
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	for _, f := range append(files, "../README.md") {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(data), "\n")
		offset, inBlock := 0, false
		for i, l := range lines {
			start := offset
			offset += len(l)
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				inBlock = !inBlock
				continue
			}
			if !inBlock {
				continue
			}
			at := -1
			switch {
			case strings.HasPrefix(l, "{"):
				at = 0
			case strings.Contains(l, "'{"):
				at = strings.Index(l, "'{") + 1
			}
			if at < 0 || strings.Contains(l, "{…}") { // {…}: a shape, not a body
				continue
			}
			if i > 0 && agentFile.MatchString(lines[i-1]) {
				continue // a file the agent keeps for itself, shown after the command that prints it
			}
			var raw json.RawMessage
			where := fmt.Sprintf("%s:%d", filepath.Base(f), i+1)
			if err := json.NewDecoder(strings.NewReader(string(data[start+at:]))).Decode(&raw); err != nil {
				t.Errorf("%s: not JSON: %v", where, err)
				continue
			}
			out = append(out, example{where: where, line: l[:at], body: raw})
		}
	}
	return out
}

// refused are request bodies the docs show being refused, and why.
var refused = map[string]string{
	`"devcie":"cuda:0"`: "devcie",
}

// TestDocs_EveryExampleBodyRoundTrips decodes every example body of the
// docs strictly into its wire type and encodes it again: a field the type
// does not know, or one it loses, fails.
func TestDocs_EveryExampleBodyRoundTrips(t *testing.T) {
	exs := examples(t)
	if len(exs) < 20 {
		t.Fatalf("found %d examples; the docs show more", len(exs))
	}
	kinds := map[string]int{}
	for _, ex := range exs {
		v, kind := typeOf(t, ex)
		if v == nil {
			t.Errorf("%s: no wire type has this shape: %.120s", ex.where, ex.body)
			continue
		}
		kinds[kind]++
		if field, ok := refusedField(ex.body); ok {
			if err := strictDecode(ex.body, v); err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("%s: got %v decoding an example of a refused body, want unknown field %q", ex.where, err, field)
			}
			continue
		}
		if err := strictDecode(ex.body, v); err != nil {
			t.Errorf("%s (%s): %v", ex.where, kind, err)
			continue
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", ex.where, err)
		}
		var want, got any
		json.Unmarshal(ex.body, &want)
		json.Unmarshal(again, &got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s (%s): changed in a round trip:\n got %s\nwant %s", ex.where, kind, again, ex.body)
		}
	}
	t.Logf("examples by type: %v", kinds)
}

func refusedField(body []byte) (string, bool) {
	for text, field := range refused {
		if bytes.Contains(body, []byte(text)) {
			return field, true
		}
	}
	return "", false
}

// strictDecode decodes body into v, refusing unknown fields at any depth.
func strictDecode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// typeOf picks the wire type of an example by its shape.
func typeOf(t *testing.T, ex example) (any, string) {
	t.Helper()
	if m := requestSubject.FindStringSubmatch(ex.line); m != nil {
		switch m[1] {
		case "spawn":
			return &wire.SpawnRequest{}, "spawn request"
		case "delete":
			return &wire.DeleteRequest{}, "delete request"
		case "list":
			return &wire.ListRequest{}, "list request"
		case "get":
			return &wire.GetRequest{}, "get request"
		case "logs":
			return &wire.LogsRequest{}, "logs request"
		}
		return nil, ""
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(ex.body, &keys); err != nil {
		t.Fatalf("%s: %v", ex.where, err)
	}
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := keys[n]; !ok {
				return false
			}
		}
		return true
	}
	switch {
	case has("ok", "kind"):
		var k struct {
			Kind   string          `json:"kind"`
			Result json.RawMessage `json:"result"`
		}
		json.Unmarshal(ex.body, &k)
		switch k.Kind {
		case wire.KindSpawn:
			return &wire.Reply[*wire.SpawnResult]{}, "spawn reply"
		case wire.KindDelete:
			if bytes.Contains(k.Result, []byte(`"already_stopped"`)) {
				return &wire.Reply[*wire.AlreadyStoppedResult]{}, "already stopped reply"
			}
			return &wire.Reply[*wire.DeleteResult]{}, "delete reply"
		case wire.KindList:
			return &wire.Reply[*wire.ListResult]{}, "list reply"
		case wire.KindGet:
			return &wire.Reply[*wire.GetResult]{}, "get reply"
		case wire.KindLogs:
			return &wire.Reply[*wire.LogsResult]{}, "logs reply"
		case wire.KindRestart:
			return &wire.Reply[*wire.RestartResult]{}, "restart reply"
		case wire.KindDrain, wire.KindResume:
			return &wire.Reply[*wire.DrainResult]{}, "drain reply"
		}
		return &wire.Reply[any]{}, "reply"
	case has("kind", "subject", "data"):
		// hive-agent events --json: the client's record of one event.
		return &client.HiveEvent{}, "cli events"
	case has("hive_id", "worker_id", "uptime_ms"):
		// hive-agent ls --json, one entry: the client's view, with its hive.
		return &client.Worker{}, "cli ls entry"
	case has("worker_id", "log_path", "lines", "offset"):
		return &wire.LogsResult{}, "logs result"
	case has("worker_id", "stopped_ms"):
		return &wire.DeleteResult{}, "delete result"
	case has("seq", "actor"):
		return &wire.Event{}, "narration"
	case has("reason", "instance", "workers"):
		return &wire.InventoryEvent{}, "inventory"
	case has("freed_mib"):
		return &wire.GPUReleased{}, "gpu released"
	case has("pids", "used_mib"):
		return &wire.GPUTainted{}, "gpu tainted"
	case has("failures"):
		return &wire.UnhealthyEvent{}, "unhealthy"
	case has("hive_id", "draining"):
		return &wire.DrainEvent{}, "drain event"
	case has("hive_id", "worker_id", "due_at"), has("hive_id", "worker_id", "reason"):
		return &wire.PendingRestartEvent{}, "pending restart"
	case has("by_job_id"):
		return &wire.StoppingEvent{}, "stopping"
	case has("ran_ms"):
		return &wire.ExitedEvent{}, "exited"
	case has("hive_id", "started_at", "port"):
		return &wire.StartedEvent{}, "started"
	case has("workers"):
		// hive-agent ls --json: the client's view, list entries with their hive.
		return &struct {
			Workers []client.Worker `json:"workers"`
		}{}, "cli ls"
	case has("hives"):
		return &struct {
			Hives []client.HiveInfo `json:"hives"`
		}{}, "cli hives"
	}
	return nil, ""
}
