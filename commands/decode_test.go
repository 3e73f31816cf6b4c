package commands_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
)

// spawnBody is a valid spawn body with extra fields (each starting with a
// comma) added to it.
func spawnBody(extra string) string {
	return `{"model_id":"m","device":"cpu"` + extra + `}`
}

// checkBadRequest fails t unless err is a bad_request naming field.
func checkBadRequest(t *testing.T, cmd commands.Command, err *commands.Error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s with field %q", commands.CodeBadRequest, field)
	}
	if err.Code != commands.CodeBadRequest {
		t.Errorf("got code %q, want %q (error %v)", err.Code, commands.CodeBadRequest, err)
	}
	if err.Field != field {
		t.Errorf("got field %q, want %q (error %v)", err.Field, field, err)
	}
	if cmd != nil {
		t.Errorf("got command %#v with the error, want nil", cmd)
	}
}

// checkEnvelope fails t unless both ids of env are valid subject tokens.
func checkEnvelope(t *testing.T, env commands.Envelope) {
	t.Helper()
	if err := subjects.ValidToken(env.JobID); err != nil {
		t.Errorf("got job_id %q: %v, want a valid token", env.JobID, err)
	}
	if err := subjects.ValidToken(env.CommandID); err != nil {
		t.Errorf("got command_id %q: %v, want a valid token", env.CommandID, err)
	}
}

func TestDecode_BadRequest(t *testing.T) {
	long65 := strings.Repeat("x", 65)
	huge := `{"model_id":"` + strings.Repeat("m", 1_000_000-len(`{"model_id":"","device":"cpu"}`)) + `","device":"cpu"}`
	if len(huge) != 1_000_000 {
		t.Fatalf("huge body is %d bytes, want 1000000", len(huge))
	}
	tests := []struct {
		name  string
		kind  string
		body  string
		field string
	}{
		// Bodies that are not one JSON object.
		{"spawn empty body needs model_id", commands.KindSpawn, "", "model_id"},
		{"spawn blank body needs model_id", commands.KindSpawn, " \n\t", "model_id"},
		{"delete empty body needs worker_id", commands.KindDelete, "", "worker_id"},
		{"get empty body needs worker_id", commands.KindGet, "", "worker_id"},
		{"garbage", commands.KindList, "garbage", ""},
		{"binary bytes", commands.KindList, "\x00\xff\xfe", ""},
		{"invalid UTF-8 in a string", commands.KindGet, "{\"worker_id\":\"w\xff\"}", ""},
		{"array", commands.KindList, `[]`, ""},
		{"string", commands.KindList, `"x"`, ""},
		{"number", commands.KindList, `1`, ""},
		{"null", commands.KindList, `null`, ""},
		{"true", commands.KindList, `true`, ""},
		{"trailing object", commands.KindList, `{} {}`, ""},
		{"trailing garbage", commands.KindGet, `{"worker_id":"w"}garbage`, ""},
		{"trailing bracket", commands.KindList, `{}]`, ""},
		{"ends early", commands.KindSpawn, `{"model_id":"m"`, ""},
		{"syntax error inside", commands.KindSpawn, `{"model_id":"m",}`, ""},
		{"raw tab in a string", commands.KindSpawn, "{\"model_id\":\"m\t\",\"device\":\"cpu\"}", ""},
		{"body over the limit", commands.KindSpawn, huge, ""},
		{"body one byte over the limit", commands.KindList, "{}" + strings.Repeat(" ", commands.MaxBodyBytes-1), ""},

		// Unknown fields.
		{"unknown field on spawn", commands.KindSpawn, `{"model_id":"m","device":"cpu","devcie":"x"}`, "devcie"},
		{"spawn field on list", commands.KindList, `{"model_id":"m"}`, "model_id"},
		{"grace_ms on get", commands.KindGet, `{"worker_id":"w","grace_ms":5}`, "grace_ms"},
		{"log_lines on delete", commands.KindDelete, `{"worker_id":"w","log_lines":5}`, "log_lines"},

		// Wrong types.
		{"port as string", commands.KindSpawn, spawnBody(`,"port":"9001"`), "port"},
		{"port fractional", commands.KindSpawn, spawnBody(`,"port":9001.5`), "port"},
		{"port exponent", commands.KindSpawn, spawnBody(`,"port":1e3`), "port"},
		{"port overflows", commands.KindSpawn, spawnBody(`,"port":99999999999999999999`), "port"},
		{"grace_ms as string", commands.KindDelete, `{"worker_id":"w","grace_ms":"5"}`, "grace_ms"},
		{"log_lines as bool", commands.KindGet, `{"worker_id":"w","log_lines":true}`, "log_lines"},
		{"model_id as number", commands.KindSpawn, `{"model_id":5,"device":"cpu"}`, "model_id"},
		{"device as object", commands.KindSpawn, `{"model_id":"m","device":{}}`, "device"},
		{"worker_id as array", commands.KindDelete, `{"worker_id":[]}`, "worker_id"},
		{"wait_timeout_ms as string", commands.KindSpawn, spawnBody(`,"wait_timeout_ms":"1"`), "wait_timeout_ms"},
		{"job_id as number", commands.KindList, `{"job_id":5}`, "job_id"},
		{"command_id as array", commands.KindList, `{"command_id":[]}`, "command_id"},

		// Missing required fields.
		{"spawn without model_id", commands.KindSpawn, `{"device":"cpu"}`, "model_id"},
		{"spawn with empty model_id", commands.KindSpawn, `{"model_id":"","device":"cpu"}`, "model_id"},
		{"spawn without device", commands.KindSpawn, `{"model_id":"m"}`, "device"},
		{"spawn with empty device", commands.KindSpawn, `{"model_id":"m","device":""}`, "device"},
		{"delete without worker_id", commands.KindDelete, `{}`, "worker_id"},
		{"get without worker_id", commands.KindGet, `{"log_lines":5}`, "worker_id"},

		// model_id values.
		{"model_id starts with dash", commands.KindSpawn, `{"model_id":"-rf","device":"cpu"}`, "model_id"},
		{"model_id with NUL", commands.KindSpawn, `{"model_id":"m\u0000","device":"cpu"}`, "model_id"},
		{"model_id with newline", commands.KindSpawn, `{"model_id":"m\nx","device":"cpu"}`, "model_id"},
		{"model_id with DEL", commands.KindSpawn, `{"model_id":"m\u007f","device":"cpu"}`, "model_id"},
		{"model_id too long", commands.KindSpawn,
			`{"model_id":"` + strings.Repeat("m", commands.MaxModelIDLen+1) + `","device":"cpu"}`, "model_id"},

		// Devices.
		{"device gpu", commands.KindSpawn, `{"model_id":"m","device":"gpu"}`, "device"},
		{"device CUDA:0", commands.KindSpawn, `{"model_id":"m","device":"CUDA:0"}`, "device"},
		{"device cuda:", commands.KindSpawn, `{"model_id":"m","device":"cuda:"}`, "device"},
		{"device cuda:-1", commands.KindSpawn, `{"model_id":"m","device":"cuda:-1"}`, "device"},
		{"device with trailing space", commands.KindSpawn, `{"model_id":"m","device":"cpu "}`, "device"},
		{"device CPU-", commands.KindSpawn, `{"model_id":"m","device":"CPU-"}`, "device"},
		{"device metal:0", commands.KindSpawn, `{"model_id":"m","device":"metal:0"}`, "device"},
		{"device cuda:99999", commands.KindSpawn, `{"model_id":"m","device":"cuda:99999"}`, "device"},
		{"device checked before worker_type", commands.KindSpawn, `{"model_id":"m","device":"gpu","worker_type":"nope"}`, "device"},

		// Worker types.
		{"worker_type with a dot", commands.KindSpawn, spawnBody(`,"worker_type":"cpu.llm"`), "worker_type"},
		{"worker_type with a space", commands.KindSpawn, spawnBody(`,"worker_type":"cpu llm"`), "worker_type"},
		{"worker_type too long", commands.KindSpawn, spawnBody(`,"worker_type":"` + strings.Repeat("t", 65) + `"`), "worker_type"},

		// Ports.
		{"port 1023", commands.KindSpawn, spawnBody(`,"port":1023`), "port"},
		{"port 65536", commands.KindSpawn, spawnBody(`,"port":65536`), "port"},
		{"port -1", commands.KindSpawn, spawnBody(`,"port":-1`), "port"},

		// Queen URLs.
		{"queen_url ftp", commands.KindSpawn, spawnBody(`,"queen_url":"ftp://x"`), "queen_url"},
		{"queen_url dash", commands.KindSpawn, spawnBody(`,"queen_url":"-x"`), "queen_url"},
		{"queen_url not a url", commands.KindSpawn, spawnBody(`,"queen_url":"not a url"`), "queen_url"},
		{"queen_url without host", commands.KindSpawn, spawnBody(`,"queen_url":"http://"`), "queen_url"},

		// Wait.
		{"wait soon", commands.KindSpawn, spawnBody(`,"wait":"soon"`), "wait"},
		{"wait upper case", commands.KindSpawn, spawnBody(`,"wait":"READY"`), "wait"},
		{"wait_timeout_ms 0", commands.KindSpawn, spawnBody(`,"wait":"ready","wait_timeout_ms":0`), "wait_timeout_ms"},
		{"wait_timeout_ms negative", commands.KindSpawn, spawnBody(`,"wait_timeout_ms":-1`), "wait_timeout_ms"},
		{"wait_timeout_ms over max", commands.KindSpawn,
			spawnBody(fmt.Sprintf(`,"wait_timeout_ms":%d`, commands.MaxWaitTimeoutMS+1)), "wait_timeout_ms"},

		// grace_ms and log_lines.
		{"grace_ms 60001", commands.KindDelete, `{"worker_id":"w","grace_ms":60001}`, "grace_ms"},
		{"grace_ms -1", commands.KindDelete, `{"worker_id":"w","grace_ms":-1}`, "grace_ms"},
		{"log_lines 1001", commands.KindGet, `{"worker_id":"w","log_lines":1001}`, "log_lines"},
		{"log_lines -1", commands.KindGet, `{"worker_id":"w","log_lines":-1}`, "log_lines"},
	}

	// Invalid ids, for every field and kind that carries one.
	badIDs := []struct{ name, id string }{
		{"dot", "a.b"}, {"star", "*"}, {"gt", ">"}, {"space", "a b"}, {"65 chars", long65},
		{"slash", "a/b"}, {"non-ASCII", "é"},
	}
	for _, bad := range badIDs {
		id := fmt.Sprintf("%q", bad.id)
		tests = append(tests,
			struct{ name, kind, body, field string }{"spawn worker_id " + bad.name, commands.KindSpawn, spawnBody(`,"worker_id":` + id), "worker_id"},
			struct{ name, kind, body, field string }{"delete worker_id " + bad.name, commands.KindDelete, `{"worker_id":` + id + `}`, "worker_id"},
			struct{ name, kind, body, field string }{"get worker_id " + bad.name, commands.KindGet, `{"worker_id":` + id + `}`, "worker_id"},
			struct{ name, kind, body, field string }{"logs worker_id " + bad.name, commands.KindLogs, `{"worker_id":` + id + `}`, "worker_id"},
		)
		for _, kind := range commands.Kinds {
			body := map[string]string{
				commands.KindSpawn:   spawnBody(""),
				commands.KindDelete:  `{"worker_id":"w"}`,
				commands.KindList:    `{}`,
				commands.KindGet:     `{"worker_id":"w"}`,
				commands.KindLogs:    `{"worker_id":"w"}`,
				commands.KindRestart: `{"worker_id":"w"}`,
				commands.KindDrain:   `{}`,
				commands.KindResume:  `{}`,
			}[kind]
			for _, f := range []string{"job_id", "command_id"} {
				b := `{"` + f + `":` + id + "," + body[1:]
				if body == `{}` {
					b = `{"` + f + `":` + id + `}`
				}
				tests = append(tests, struct{ name, kind, body, field string }{kind + " " + f + " " + bad.name, kind, b, f})
			}
		}
	}
	// An empty worker_id is "required" for delete and get.
	tests = append(tests,
		struct{ name, kind, body, field string }{"delete empty worker_id", commands.KindDelete, `{"worker_id":""}`, "worker_id"},
		struct{ name, kind, body, field string }{"get empty worker_id", commands.KindGet, `{"worker_id":""}`, "worker_id"},
		struct{ name, kind, body, field string }{"logs empty worker_id", commands.KindLogs, `{"worker_id":""}`, "worker_id"},
		struct{ name, kind, body, field string }{"logs without worker_id", commands.KindLogs, `{"lines":5}`, "worker_id"},
		struct{ name, kind, body, field string }{"logs lines and offset", commands.KindLogs, `{"worker_id":"w","lines":5,"offset":0}`, "offset"},
		struct{ name, kind, body, field string }{"logs lines negative", commands.KindLogs, `{"worker_id":"w","lines":-1}`, "lines"},
		struct{ name, kind, body, field string }{"logs lines over 1000", commands.KindLogs, `{"worker_id":"w","lines":1001}`, "lines"},
		struct{ name, kind, body, field string }{"logs offset negative", commands.KindLogs, `{"worker_id":"w","offset":-1}`, "offset"},
		struct{ name, kind, body, field string }{"logs max_bytes zero", commands.KindLogs, `{"worker_id":"w","offset":0,"max_bytes":0}`, "max_bytes"},
		struct{ name, kind, body, field string }{"logs max_bytes over 1 MiB", commands.KindLogs, `{"worker_id":"w","offset":0,"max_bytes":1048577}`, "max_bytes"},
		struct{ name, kind, body, field string }{"logs max_bytes without offset", commands.KindLogs, `{"worker_id":"w","max_bytes":10}`, "max_bytes"},
		struct{ name, kind, body, field string }{"logs offset as string", commands.KindLogs, `{"worker_id":"w","offset":"0"}`, "offset"},
		struct{ name, kind, body, field string }{"logs offset fractional", commands.KindLogs, `{"worker_id":"w","offset":1.5}`, "offset"},
		struct{ name, kind, body, field string }{"logs log_lines is get's", commands.KindLogs, `{"worker_id":"w","log_lines":5}`, "log_lines"},
	)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, env, err := commands.Decode(tt.kind, []byte(tt.body))
			checkBadRequest(t, cmd, err, tt.field)
			checkEnvelope(t, env)
		})
	}
}

func TestDecode_UnknownCommand(t *testing.T) {
	tests := []struct{ name, kind, body string }{
		{"reboot", "worker.reboot", `{}`},
		{"empty kind", "", `{}`},
		{"bare token", "spawn", `{"model_id":"m","device":"cpu"}`},
		{"upper case", "WORKER.SPAWN", `{"model_id":"m","device":"cpu"}`},
		{"not JSON", "worker.reboot", "garbage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, env, err := commands.Decode(tt.kind, []byte(tt.body))
			if err == nil {
				t.Fatalf("got no error, want %s", commands.CodeUnknownCommand)
			}
			if err.Code != commands.CodeUnknownCommand {
				t.Errorf("got code %q, want %q", err.Code, commands.CodeUnknownCommand)
			}
			if err.Field != "" {
				t.Errorf("got field %q, want none", err.Field)
			}
			if cmd != nil {
				t.Errorf("got command %#v, want nil", cmd)
			}
			checkEnvelope(t, env)
		})
	}
}

func TestDecode_OK(t *testing.T) {
	tests := []struct {
		name  string
		kind  string
		body  string
		check func(t *testing.T, cmd commands.Command)
	}{
		{"list empty body", commands.KindList, "", nil},
		{"list blank body", commands.KindList, "  \r\n", nil},
		{"list empty object", commands.KindList, "{}", nil},
		{"list with ids", commands.KindList, `{"job_id":"j1","command_id":"c1"}`, nil},
		{"list body at the limit", commands.KindList, "{}" + strings.Repeat(" ", commands.MaxBodyBytes-2), nil},
		{"spawn minimal", commands.KindSpawn, spawnBody(""), func(t *testing.T, cmd commands.Command) {
			s := cmd.(*commands.Spawn)
			if s.ModelID != "m" || s.Device != "cpu" {
				t.Errorf("got model_id %q device %q, want m cpu", s.ModelID, s.Device)
			}
			if s.Port != 0 || s.QueenURL != "" || s.Wait != "" || s.WaitTimeoutMS != nil || s.WorkerType != "" {
				t.Errorf("got %+v, want optional fields left empty", s)
			}
		}},
		{"spawn every field", commands.KindSpawn,
			`{"model_id":"meta-llama/Llama-3-8b","device":"cuda:0","worker_id":"w1","worker_type":"cuda-llm","port":9001,` +
				`"queen_url":"https://q.example:7833/x","wait":"ready","wait_timeout_ms":2500,"job_id":"j1","command_id":"c1"}`,
			func(t *testing.T, cmd commands.Command) {
				s := cmd.(*commands.Spawn)
				if s.ModelID != "meta-llama/Llama-3-8b" || s.Device != "cuda:0" || s.WorkerID != "w1" ||
					s.WorkerType != "cuda-llm" || s.Port != 9001 || s.QueenURL != "https://q.example:7833/x" ||
					s.Wait != commands.WaitReady || s.WaitTimeoutMS == nil || *s.WaitTimeoutMS != 2500 {
					t.Errorf("got %+v, want every field as sent", s)
				}
			}},
		{"spawn model_id at max length", commands.KindSpawn,
			`{"model_id":"` + strings.Repeat("m", commands.MaxModelIDLen) + `","device":"cpu"}`, nil},
		{"spawn model_id with unicode", commands.KindSpawn, `{"model_id":"modèle/ünï","device":"cpu"}`, nil},
		{"spawn worker_id 64 chars", commands.KindSpawn, spawnBody(`,"worker_id":"` + strings.Repeat("w", 64) + `"`), nil},
		{"spawn null optional fields", commands.KindSpawn, spawnBody(`,"port":null,"worker_id":null,"wait_timeout_ms":null`), nil},
		{"spawn surrounded by whitespace", commands.KindSpawn, "\n  " + spawnBody("") + "\n", nil},
		{"device cpu", commands.KindSpawn, `{"model_id":"m","device":"cpu"}`, nil},
		{"device CPU-0", commands.KindSpawn, `{"model_id":"m","device":"CPU-0"}`, nil},
		{"device CPU-12", commands.KindSpawn, `{"model_id":"m","device":"CPU-12"}`, nil},
		{"device cuda:0", commands.KindSpawn, `{"model_id":"m","device":"cuda:0"}`, nil},
		{"device cuda:3", commands.KindSpawn, `{"model_id":"m","device":"cuda:3"}`, nil},
		{"device GPU-1", commands.KindSpawn, `{"model_id":"m","device":"GPU-1"}`, nil},
		{"device metal", commands.KindSpawn, `{"model_id":"m","device":"metal"}`, nil},
		{"worker_type cpu-llm with cpu", commands.KindSpawn, spawnBody(`,"worker_type":"cpu-llm"`), nil},
		{"worker_type cpu-llm with CPU-0", commands.KindSpawn, `{"model_id":"m","device":"CPU-0","worker_type":"cpu-llm"}`, nil},
		{"worker_type cuda-llm with cuda:0", commands.KindSpawn, `{"model_id":"m","device":"cuda:0","worker_type":"cuda-llm"}`, nil},
		{"worker_type cuda-llm with GPU-1", commands.KindSpawn, `{"model_id":"m","device":"GPU-1","worker_type":"cuda-llm"}`, nil},
		{"worker_type metal-llm with metal", commands.KindSpawn, `{"model_id":"m","device":"metal","worker_type":"metal-llm"}`, nil},
		{"port 0", commands.KindSpawn, spawnBody(`,"port":0`), nil},
		{"port 1024", commands.KindSpawn, spawnBody(`,"port":1024`), nil},
		{"port 65535", commands.KindSpawn, spawnBody(`,"port":65535`), nil},
		{"queen_url http", commands.KindSpawn, spawnBody(`,"queen_url":"http://q:7833"`), nil},
		{"wait exec", commands.KindSpawn, spawnBody(`,"wait":"exec"`), nil},
		{"wait alive", commands.KindSpawn, spawnBody(`,"wait":"alive"`), nil},
		{"wait ready", commands.KindSpawn, spawnBody(`,"wait":"ready"`), nil},
		{"wait_timeout_ms 1", commands.KindSpawn, spawnBody(`,"wait_timeout_ms":1`), nil},
		{"wait_timeout_ms max", commands.KindSpawn, spawnBody(fmt.Sprintf(`,"wait_timeout_ms":%d`, commands.MaxWaitTimeoutMS)), nil},
		{"grace_ms default", commands.KindDelete, `{"worker_id":"w"}`, wantGrace(commands.DefaultGraceMS)},
		{"grace_ms null is the default", commands.KindDelete, `{"worker_id":"w","grace_ms":null}`, wantGrace(commands.DefaultGraceMS)},
		{"grace_ms 0", commands.KindDelete, `{"worker_id":"w","grace_ms":0}`, wantGrace(0)},
		{"grace_ms 60000", commands.KindDelete, `{"worker_id":"w","grace_ms":60000}`, wantGrace(60000)},
		{"log_lines default", commands.KindGet, `{"worker_id":"w"}`, wantLogLines(commands.DefaultLogLines)},
		{"log_lines 0", commands.KindGet, `{"worker_id":"w","log_lines":0}`, wantLogLines(0)},
		{"log_lines 1000", commands.KindGet, `{"worker_id":"w","log_lines":1000}`, wantLogLines(1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, env, err := commands.Decode(tt.kind, []byte(tt.body))
			if err != nil {
				t.Fatalf("got error %v (field %q), want none", err, err.Field)
			}
			if cmd == nil {
				t.Fatal("got nil command, want one")
			}
			if got := cmd.Kind(); got != tt.kind {
				t.Errorf("got kind %q, want %q", got, tt.kind)
			}
			if got := cmd.Env(); got != env {
				t.Errorf("got command envelope %+v, want the returned %+v", got, env)
			}
			checkEnvelope(t, env)
			if tt.check != nil {
				tt.check(t, cmd)
			}
		})
	}
}

func wantGrace(ms int) func(t *testing.T, cmd commands.Command) {
	return func(t *testing.T, cmd commands.Command) {
		t.Helper()
		d := cmd.(*commands.Delete)
		if d.GraceMS == nil || *d.GraceMS != ms {
			t.Errorf("got grace_ms %v, want %d", d.GraceMS, ms)
		}
	}
}

func wantLogLines(n int) func(t *testing.T, cmd commands.Command) {
	return func(t *testing.T, cmd commands.Command) {
		t.Helper()
		g := cmd.(*commands.Get)
		if g.LogLines == nil || *g.LogLines != n {
			t.Errorf("got log_lines %v, want %d", g.LogLines, n)
		}
	}
}

func TestDecode_GeneratedIDs(t *testing.T) {
	tests := []struct{ name, kind, body string }{
		{"list ok", commands.KindList, ""},
		{"spawn ok", commands.KindSpawn, spawnBody("")},
		{"delete ok", commands.KindDelete, `{"worker_id":"w"}`},
		{"get ok", commands.KindGet, `{"worker_id":"w"}`},
		{"empty ids", commands.KindList, `{"job_id":"","command_id":""}`},
		{"not JSON", commands.KindList, "garbage"},
		{"invalid value", commands.KindSpawn, `{"model_id":"-x","device":"cpu"}`},
		{"unknown kind", "worker.reboot", ""},
		{"too big", commands.KindList, strings.Repeat(" ", commands.MaxBodyBytes+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, a, _ := commands.Decode(tt.kind, []byte(tt.body))
			_, b, _ := commands.Decode(tt.kind, []byte(tt.body))
			checkEnvelope(t, a)
			checkEnvelope(t, b)
			if a.JobID == b.JobID {
				t.Errorf("got job_id %q twice, want a new one per call", a.JobID)
			}
			if a.CommandID == b.CommandID {
				t.Errorf("got command_id %q twice, want a new one per call", a.CommandID)
			}
			if a.JobID == a.CommandID {
				t.Errorf("got job_id and command_id both %q, want different ids", a.JobID)
			}
		})
	}
}

func TestDecode_EnvelopeKeepsValidIDs(t *testing.T) {
	const job, command = "job-1", "cmd_1"
	tests := []struct {
		name        string
		kind        string
		body        string
		wantErr     bool
		wantJob     string // "" means a generated one
		wantCommand string // "" means a generated one
	}{
		{"spawn ok", commands.KindSpawn, spawnBody(`,"job_id":"job-1","command_id":"cmd_1"`), false, job, command},
		{"delete ok", commands.KindDelete, `{"worker_id":"w","job_id":"job-1","command_id":"cmd_1"}`, false, job, command},
		{"list ok", commands.KindList, `{"job_id":"job-1","command_id":"cmd_1"}`, false, job, command},
		{"get ok", commands.KindGet, `{"worker_id":"w","job_id":"job-1","command_id":"cmd_1"}`, false, job, command},
		{"only job_id", commands.KindList, `{"job_id":"job-1"}`, false, job, ""},
		{"only command_id", commands.KindList, `{"command_id":"cmd_1"}`, false, "", command},
		{"invalid value", commands.KindSpawn, `{"model_id":"-x","device":"cpu","job_id":"job-1","command_id":"cmd_1"}`, true, job, command},
		{"missing field", commands.KindDelete, `{"job_id":"job-1","command_id":"cmd_1"}`, true, job, command},
		{"unknown field", commands.KindList, `{"job_id":"job-1","command_id":"cmd_1","x":1}`, true, job, command},
		{"wrong type", commands.KindSpawn, spawnBody(`,"port":"9001","job_id":"job-1","command_id":"cmd_1"`), true, job, command},
		{"trailing data", commands.KindList, `{"job_id":"job-1","command_id":"cmd_1"} {}`, true, job, command},
		{"unknown kind", "worker.reboot", `{"job_id":"job-1","command_id":"cmd_1"}`, true, job, command},
		{"invalid job_id", commands.KindList, `{"job_id":"a.b","command_id":"cmd_1"}`, true, "", command},
		{"invalid command_id", commands.KindList, `{"job_id":"job-1","command_id":"*"}`, true, job, ""},
		{"job_id of wrong type", commands.KindList, `{"job_id":5,"command_id":"cmd_1"}`, true, "", command},
		{"invalid job_id on an otherwise good spawn", commands.KindSpawn, spawnBody(`,"job_id":"job.>"`), true, "", ""},
		{"not JSON", commands.KindList, `job_id=job-1`, true, "", ""},
		{"ends early", commands.KindList, `{"job_id":"job-1"`, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, env, err := commands.Decode(tt.kind, []byte(tt.body))
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("got error %v, want error: %v", err, tt.wantErr)
			}
			checkEnvelope(t, env)
			if tt.wantJob != "" && env.JobID != tt.wantJob {
				t.Errorf("got job_id %q, want %q", env.JobID, tt.wantJob)
			}
			if tt.wantJob == "" && (env.JobID == job || strings.ContainsAny(env.JobID, ".>*")) {
				t.Errorf("got job_id %q, want a generated one", env.JobID)
			}
			if tt.wantCommand != "" && env.CommandID != tt.wantCommand {
				t.Errorf("got command_id %q, want %q", env.CommandID, tt.wantCommand)
			}
			if tt.wantCommand == "" && env.CommandID == command {
				t.Errorf("got command_id %q, want a generated one", env.CommandID)
			}
		})
	}
}

func TestDecode_GeneratedWorkerID(t *testing.T) {
	re := regexp.MustCompile(`^worker-[0-9a-f]{8}$`)
	seen := map[string]bool{}
	for _, body := range []string{spawnBody(""), spawnBody(`,"worker_id":null`)} {
		for range 3 {
			cmd, _, err := commands.Decode(commands.KindSpawn, []byte(body))
			if err != nil {
				t.Fatalf("Decode(%s): got error %v, want none", body, err)
			}
			id := cmd.(*commands.Spawn).WorkerID
			if !re.MatchString(id) {
				t.Errorf("Decode(%s): got worker_id %q, want it to match %s", body, id, re)
			}
			if seen[id] {
				t.Errorf("Decode(%s): got worker_id %q again, want a new one", body, id)
			}
			seen[id] = true
		}
	}
	cmd, _, err := commands.Decode(commands.KindSpawn, []byte(spawnBody(`,"worker_id":"mine"`)))
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if got := cmd.(*commands.Spawn).WorkerID; got != "mine" {
		t.Errorf("got worker_id %q, want %q", got, "mine")
	}
}

// Field names are exact and each may appear once: encoding/json alone would
// take "MODEL_ID" for model_id and let a repeated key win silently.
func TestDecode_ExactFieldNames(t *testing.T) {
	for _, c := range []struct{ name, kind, body, field string }{
		{"empty worker_id on spawn", commands.KindSpawn, spawnBody(`,"worker_id":""`), "worker_id"},
		{"empty job_id", commands.KindList, `{"job_id":""}`, "job_id"},
		{"empty command_id", commands.KindSpawn, spawnBody(`,"command_id":""`), "command_id"},
		{"upper-case name", commands.KindSpawn, `{"MODEL_ID":"m","device":"cpu"}`, "MODEL_ID"},
		{"mixed-case name", commands.KindDelete, `{"Worker_Id":"w"}`, "Worker_Id"},
		{"mixed-case envelope", commands.KindList, `{"Job_ID":"j"}`, "Job_ID"},
		{"repeated key", commands.KindSpawn, `{"model_id":"m","device":"cpu","model_id":"n"}`, "model_id"},
		{"repeated envelope key", commands.KindGet, `{"worker_id":"w","job_id":"a","job_id":"b"}`, "job_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd, env, err := commands.Decode(c.kind, []byte(c.body))
			checkBadRequest(t, cmd, err, c.field)
			checkEnvelope(t, env)
		})
	}
}

// An unknown field names the closest known one when it looks like a typo,
// and lists the known fields otherwise.
func TestDecode_UnknownFieldHint(t *testing.T) {
	tests := []struct{ kind, body, field, wantMsg string }{
		{commands.KindSpawn, `{"model_id":"m","device":"cpu","devcie":"x"}`, "devcie", "devcie: unknown field; did you mean device?"},
		{commands.KindSpawn, `{"model_id":"m","Device":"cpu"}`, "Device", "Device: unknown field; did you mean device?"},
		{commands.KindSpawn, `{"modelid":"m","device":"cpu"}`, "modelid", "modelid: unknown field; did you mean model_id?"},
		{commands.KindDelete, `{"worker_id":"w","grace":5}`, "grace", "grace: unknown field; did you mean grace_ms?"},
		{commands.KindLogs, `{"worker_id":"w","offest":0}`, "offest", "offest: unknown field; did you mean offset?"},
		{commands.KindLogs, `{"worker_id":"w","line":3}`, "line", "line: unknown field; did you mean lines?"},
		{commands.KindList, `{"verbose":true}`, "verbose", "verbose: unknown field; known fields: all, command_id, job_id"},
		{commands.KindGet, `{"worker_id":"w","x":1}`, "x", "x: unknown field; known fields: command_id, job_id, log_lines, worker_id"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			_, _, err := commands.Decode(tt.kind, []byte(tt.body))
			if err == nil || err.Code != commands.CodeBadRequest || err.Field != tt.field || err.Message != tt.wantMsg {
				t.Errorf("got %+v, want bad_request on %s with message %q", err, tt.field, tt.wantMsg)
			}
		})
	}
}
