package commands_test

import (
	"testing"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// FuzzDecode: whatever arrives, Decode does not panic, always returns a
// usable envelope, and returns either a command of the asked kind or an
// error with a wire code.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `garbage`, `[]`, `null`, `{"model_id":"m","device":"cpu"}`,
		`{"worker_id":"w","grace_ms":5000}`, `{"job_id":"a.b"}`, `{"MODEL_ID":"m"}`,
		`{"model_id":"m","device":"cuda:0","port":9001,"wait":"ready","wait_timeout_ms":1}`,
		"\x00\xff", `{"log_lines":1e400}`, `{"port":-0}`, `{} {}`,
	} {
		for _, kind := range wire.Kinds {
			f.Add(kind, []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, kind string, body []byte) {
		cmd, env, err := commands.Decode(kind, body)
		if subjects.ValidToken(env.JobID) != nil || subjects.ValidToken(env.CommandID) != nil {
			t.Fatalf("unusable envelope %+v", env)
		}
		if (cmd == nil) == (err == nil) {
			t.Fatalf("got command %v and error %v: want exactly one", cmd, err)
		}
		if err != nil {
			if err.Code != wire.CodeBadRequest && err.Code != wire.CodeUnknownCommand {
				t.Fatalf("decode error with code %q", err.Code)
			}
			return
		}
		if cmd.Kind() != kind || cmd.Env() != env {
			t.Fatalf("got kind %q env %+v, want %q %+v", cmd.Kind(), cmd.Env(), kind, env)
		}
	})
}
