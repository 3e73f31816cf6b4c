//go:build unix

package consumer_test

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// A follower reads the last lines, then polls with the returned offset and
// gets exactly what was appended since, whole lines only; a rotated log
// restarts at 0 with truncated set; an exited worker's log stays readable.
func TestConsumer_WorkerLogsFollow(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"lw","model_id":"m@lines=100","device":"cpu","wait":"ready"}`, &sp)

	var last wire.LogsResult
	a.must(t, "logs", `{"worker_id":"lw","lines":3}`, &last)
	fi, err := os.Stat(sp.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(last.Lines) != 3 || !strings.HasPrefix(last.Lines[2], "testworker: listening on") ||
		last.Offset != fi.Size() || last.Size != fi.Size() || last.LogPath != sp.LogPath || last.Truncated {
		t.Fatalf("lines read: got %+v, want the last 3 lines and offset = size = %d", last, fi.Size())
	}
	var def wire.LogsResult
	a.must(t, "logs", `{"worker_id":"lw"}`, &def)
	if len(def.Lines) != commands.DefaultLogReadLines {
		t.Errorf("default read: got %d lines, want %d", len(def.Lines), commands.DefaultLogReadLines)
	}

	// Appended by hand: a whole line and an unfinished one.
	f, err := os.OpenFile(sp.LogPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("appended 1\npartial")
	var next wire.LogsResult
	a.must(t, "logs", `{"worker_id":"lw","offset":`+strconv.FormatInt(last.Offset, 10)+`}`, &next)
	if !slices.Equal(next.Lines, []string{"appended 1"}) || next.Offset != last.Offset+int64(len("appended 1\n")) {
		t.Fatalf("offset read: got %+v, want the whole appended line only", next)
	}
	f.WriteString(" line\n")
	a.must(t, "logs", `{"worker_id":"lw","offset":`+strconv.FormatInt(next.Offset, 10)+`,"max_bytes":1048576}`, &next)
	if !slices.Equal(next.Lines, []string{"partial line"}) {
		t.Fatalf("offset read after the line was finished: got %+v", next)
	}
	var small wire.LogsResult
	a.must(t, "logs", `{"worker_id":"lw","offset":0,"max_bytes":30}`, &small)
	if len(small.Lines) == 0 || small.Offset > 30 {
		t.Errorf("max_bytes 30: got %+v, want whole lines within the first 30 bytes", small)
	}

	// Rotated: the file is now shorter than the offset.
	if err := os.Truncate(sp.LogPath, 0); err != nil {
		t.Fatal(err)
	}
	f.WriteString("after rotation\n")
	var rot wire.LogsResult
	a.must(t, "logs", `{"worker_id":"lw","offset":`+strconv.FormatInt(next.Offset, 10)+`}`, &rot)
	if !rot.Truncated || !slices.Equal(rot.Lines, []string{"after rotation"}) || rot.Offset != int64(len("after rotation\n")) {
		t.Errorf("read after rotation: got %+v, want truncated and the new line", rot)
	}

	a.must(t, "delete", `{"worker_id":"lw","grace_ms":0}`, nil)
	var gone wire.LogsResult
	a.must(t, "logs", `{"worker_id":"lw","lines":1000}`, &gone)
	if len(gone.Lines) == 0 || !strings.Contains(strings.Join(gone.Lines, "\n"), "after rotation") {
		t.Errorf("log of the exited worker: got %+v", gone)
	}
	wantError(t, a.req(t, "logs", `{"worker_id":"never-ran"}`), wire.CodeNotFound, "")
	a.stillServes(t)
}

// Every bad logs request gets its exact code and field, and the agent
// answers the next command.
func TestConsumer_WorkerLogsBadInputs(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	cases := []struct{ name, body, field, msg string }{
		{"lines and offset", `{"worker_id":"w","lines":5,"offset":0}`, "offset", ""},
		{"lines over 1000", `{"worker_id":"w","lines":1001}`, "lines", ""},
		{"lines negative", `{"worker_id":"w","lines":-1}`, "lines", ""},
		{"offset negative", `{"worker_id":"w","offset":-5}`, "offset", ""},
		{"max_bytes over 1 MiB", `{"worker_id":"w","offset":0,"max_bytes":1048577}`, "max_bytes", ""},
		{"max_bytes zero", `{"worker_id":"w","offset":0,"max_bytes":0}`, "max_bytes", ""},
		{"max_bytes without offset", `{"worker_id":"w","max_bytes":100}`, "max_bytes", ""},
		{"since_ms and offset", `{"worker_id":"w","since_ms":1,"offset":0}`, "since_ms", ""},
		{"since_ms and lines", `{"worker_id":"w","since_ms":1,"lines":5}`, "since_ms", ""},
		{"since_ms negative", `{"worker_id":"w","since_ms":-1}`, "since_ms", ""},
		{"since_ms as text", `{"worker_id":"w","since_ms":"10m"}`, "since_ms", ""},
		{"missing worker_id", `{"lines":5}`, "worker_id", ""},
		{"bad worker_id", `{"worker_id":"a.b"}`, "worker_id", ""},
		{"offset as string", `{"worker_id":"w","offset":"12"}`, "offset", ""},
		{"typo with a hint", `{"worker_id":"w","ofset":12}`, "ofset", "ofset: unknown field; did you mean offset?"},
		{"get's field", `{"worker_id":"w","log_lines":12}`, "log_lines", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.req(t, "logs", tc.body)
			wantError(t, r, wire.CodeBadRequest, tc.field)
			if tc.msg != "" && r.Error.Message != tc.msg {
				t.Errorf("message: got %q, want %q", r.Error.Message, tc.msg)
			}
			if r.Kind != "worker.logs" || r.HiveID != a.hive {
				t.Errorf("reply kind %q hive %q", r.Kind, r.HiveID)
			}
			a.stillServes(t)
		})
	}
	// The unknown-field hint reaches the wire on every command.
	r := a.req(t, "spawn", `{"model_id":"m","devcie":"cpu"}`)
	wantError(t, r, wire.CodeBadRequest, "devcie")
	if r.Error.Message != "devcie: unknown field; did you mean device?" {
		t.Errorf("message: got %q", r.Error.Message)
	}
	a.stillServes(t)
}

// A process of the agent's user with a forged marker naming a file outside
// the log directory is listed (it carries the marker), but its "log" is
// never read: get and logs return no lines.
func TestConsumer_ForgedLogPathIsNotRead(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	// A real worker first, so that the log directory exists.
	a.must(t, "spawn", `{"worker_id":"real","model_id":"m","device":"cpu","wait":"exec"}`, nil)
	cmd := exec.Command("sleep", "60")
	cmd.Env = []string{"HIVE_AGENT_HIVE_ID=" + a.hive, "HIVE_AGENT_WORKER_ID=forged", "HIVE_AGENT_LOG_PATH=/etc/hostname"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !testenv.WaitMarked(a.hive, 2, 10*time.Second) {
		t.Fatal("the forged process does not show its marker")
	}
	var got wire.GetResult
	a.must(t, "get", `{"worker_id":"forged","log_lines":1000}`, &got)
	if got.LogPath != "/etc/hostname" || got.LogTail == nil || len(got.LogTail) != 0 {
		t.Errorf("get: log_path %q, log_tail %q; want the marker's path and no lines", got.LogPath, got.LogTail)
	}
	var logs wire.LogsResult
	a.must(t, "logs", `{"worker_id":"forged","offset":0}`, &logs)
	if len(logs.Lines) != 0 || logs.Size != 0 {
		t.Errorf("logs: got %+v, want no lines", logs)
	}
	a.stillServes(t)
	a.must(t, "delete", `{"worker_id":"real","grace_ms":0}`, nil)
}
