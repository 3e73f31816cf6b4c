package consumer_test

import (
	"net"
	"time"

	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// Every bad input gets its exact error code (and field), a reply that still
// carries kind and hive_id, and the agent answers the next command.
func TestConsumer_BadInputs(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) {
		o.devices = spawner.DeviceProbe{NvidiaProcDir: t.TempDir(), NvidiaSMI: "/nonexistent/nvidia-smi"}
	})
	a.must(t, "spawn", `{"command_id":"first","worker_id":"taken","model_id":"m","device":"cpu","wait":"exec"}`, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busyPort := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)

	huge := `{"model_id":"` + strings.Repeat("x", 1_000_000) + `","device":"cpu"}`
	cases := []struct {
		name, cmd, body, code, field string
	}{
		{"not JSON", "spawn", `garbage`, wire.CodeBadRequest, ""},
		{"binary", "spawn", "\x00\xff\xfe\x01", wire.CodeBadRequest, ""},
		{"JSON array", "list", `[]`, wire.CodeBadRequest, ""},
		{"truncated JSON", "spawn", `{"model_id":"m"`, wire.CodeBadRequest, ""},
		{"1 MB body", "spawn", huge, wire.CodeBadRequest, ""},
		{"unknown field", "spawn", `{"model_id":"m","device":"cpu","devcie":"cuda:0"}`, wire.CodeBadRequest, "devcie"},
		{"unknown field on list", "list", `{"verbose":true}`, wire.CodeBadRequest, "verbose"},
		{"wrong type", "spawn", `{"model_id":"m","device":"cpu","port":"9001"}`, wire.CodeBadRequest, "port"},
		{"missing model", "spawn", `{"device":"cpu"}`, wire.CodeBadRequest, "model_id"},
		{"missing device", "spawn", `{"model_id":"m"}`, wire.CodeBadRequest, "device"},
		{"model like a flag", "spawn", `{"model_id":"--help","device":"cpu"}`, wire.CodeBadRequest, "model_id"},
		{"bad device", "spawn", `{"model_id":"m","device":"gpu"}`, wire.CodeBadRequest, "device"},
		{"type disagrees with device", "spawn", `{"model_id":"m","device":"cpu","worker_type":"cuda-llm"}`, wire.CodeDeviceUnavailable, ""},
		{"unknown worker type", "spawn", `{"model_id":"m","device":"cpu","worker_type":"vllm"}`, wire.CodeBadRequest, "worker_type"},
		{"worker type not a token", "spawn", `{"model_id":"m","device":"cpu","worker_type":"a.b"}`, wire.CodeBadRequest, "worker_type"},
		{"GPU UUID that is not there", "spawn", `{"model_id":"m","device":"GPU-00000000-0000-0000-0000-000000000000"}`, wire.CodeDeviceUnavailable, ""},
		{"unknown restart policy", "spawn", `{"model_id":"m","device":"cpu","restart":"always"}`, wire.CodeBadRequest, "restart"},
		{"negative max_restarts", "spawn", `{"model_id":"m","device":"cpu","max_restarts":-1}`, wire.CodeBadRequest, "max_restarts"},
		{"max_restarts too high", "spawn", `{"model_id":"m","device":"cpu","max_restarts":1001}`, wire.CodeBadRequest, "max_restarts"},
		{"port below 1024", "spawn", `{"model_id":"m","device":"cpu","port":80}`, wire.CodeBadRequest, "port"},
		{"bad wait", "spawn", `{"model_id":"m","device":"cpu","wait":"forever"}`, wire.CodeBadRequest, "wait"},
		{"metal on linux", "spawn", `{"model_id":"m","device":"metal"}`, wire.CodeDeviceUnavailable, ""},
		{"GPU that is not there", "spawn", `{"model_id":"m","device":"cuda:3"}`, wire.CodeDeviceUnavailable, ""},
		{"duplicate worker id", "spawn", `{"worker_id":"taken","model_id":"m","device":"cpu"}`, wire.CodeConflict, ""},
		{"port taken", "spawn", `{"worker_id":"p","model_id":"m","device":"cpu","port":` + busyPort + `}`, wire.CodeConflict, ""},
		{"grace too long", "delete", `{"worker_id":"taken","grace_ms":60001}`, wire.CodeBadRequest, "grace_ms"},
		{"grace invalid for unknown worker", "delete", `{"worker_id":"nobody","grace_ms":-1}`, wire.CodeBadRequest, "grace_ms"},
		{"delete unknown worker", "delete", `{"worker_id":"nobody"}`, wire.CodeNotFound, ""},
		{"get unknown worker", "get", `{"worker_id":"nobody"}`, wire.CodeNotFound, ""},
		{"too many log lines", "get", `{"worker_id":"taken","log_lines":1001}`, wire.CodeBadRequest, "log_lines"},
		{"unknown command", "reboot", `{}`, wire.CodeUnknownCommand, ""},
		{"unknown deeper subject", "spawn.now", `{}`, wire.CodeUnknownCommand, ""},
		{"job id with a dot", "list", `{"job_id":"a.b"}`, wire.CodeBadRequest, "job_id"},
		{"command id wildcard", "list", `{"command_id":">"}`, wire.CodeBadRequest, "command_id"},
	}
	for _, id := range []struct{ name, value string }{
		{"dot", "a.b"}, {"star", "*"}, {"gt", ">"}, {"space", "a b"}, {"empty", ""}, {"65 chars", strings.Repeat("w", 65)},
	} {
		cases = append(cases,
			struct{ name, cmd, body, code, field string }{"worker id " + id.name + " on delete", "delete", `{"worker_id":"` + id.value + `"}`, wire.CodeBadRequest, "worker_id"},
			struct{ name, cmd, body, code, field string }{"worker id " + id.name + " on get", "get", `{"worker_id":"` + id.value + `"}`, wire.CodeBadRequest, "worker_id"},
		)
		cases = append(cases, struct{ name, cmd, body, code, field string }{"worker id " + id.name + " on spawn", "spawn",
			`{"worker_id":"` + id.value + `","model_id":"m","device":"cpu"}`, wire.CodeBadRequest, "worker_id"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := a.req(t, c.cmd, c.body)
			wantError(t, r, c.code, c.field)
			if r.Kind != "worker."+c.cmd || r.HiveID != a.hive || r.JobID == "" || r.CommandID == "" {
				t.Errorf("error reply lacks its envelope: %s", r.raw)
			}
			a.stillServes(t)
		})
	}
	if got := testenv.Marked(a.hive); len(got) != 1 {
		t.Errorf("bad inputs started or stopped processes: got %v, want only the one worker", got)
	}
	a.must(t, "delete", `{"worker_id":"taken"}`, nil)
}

func TestConsumer_MissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	empty := t.TempDir()
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.workerDirs = []string{empty} })
	r := a.req(t, "spawn", `{"model_id":"m","device":"cpu"}`)
	wantError(t, r, wire.CodeBinaryNotFound, "")
	for _, want := range []string{"cpu-llm-worker-rbee", empty, "PATH"} {
		if !strings.Contains(r.Error.Message, want) {
			t.Errorf("message %q does not say where it looked (%s)", r.Error.Message, want)
		}
	}
	a.stillServes(t)
}

// A result that cannot fit the server's max_payload still gets an answer:
// a short internal error saying why, as reply and as job result.
func TestConsumer_ResultTooLargeForServer(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	a := startAgent(t, s)
	result := a.watch(t, "job.j-big.result")
	a.must(t, "spawn", `{"worker_id":"chatty","model_id":"m@lines=1000","device":"cpu","wait":"ready"}`, nil)
	r := a.req(t, "get", `{"job_id":"j-big","worker_id":"chatty","log_lines":1000}`)
	wantError(t, r, wire.CodeInternal, "")
	if !strings.Contains(r.Error.Message, "max_payload") {
		t.Errorf("message %q does not say why", r.Error.Message)
	}
	if got := result.waitFor(t, "result", result.count(1)); string(got[0]) != string(r.raw) {
		t.Errorf("job result %s differs from the reply %s", got[0], r.raw)
	}
	var g wire.GetResult
	a.must(t, "get", `{"worker_id":"chatty","log_lines":5}`, &g)
	a.must(t, "delete", `{"worker_id":"chatty"}`, nil)
}
