package consumer_test

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// An offset read of the documented maximum, 1 MiB, of a text log larger
// than that answers ok with what fits the server's max payload; the next
// read continues exactly where it stopped: no line lost or read twice.
func TestConsumer_WorkerLogsMaxBytesFitsPayload(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	const n = 150000 // "line 1".."line 150000": about 1.8 MB
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"big","model_id":"m@lines=`+strconv.Itoa(n)+`","device":"cpu","wait":"ready"}`, &sp)
	var content []byte
	deadline := time.Now().Add(60 * time.Second)
	for !bytes.Contains(content, []byte("\nline "+strconv.Itoa(n)+"\n")) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not write its %d lines within 60s", n)
		}
		time.Sleep(50 * time.Millisecond)
		var err error
		if content, err = os.ReadFile(sp.LogPath); err != nil {
			t.Fatal(err)
		}
	}
	if len(content) <= commands.MaxLogMaxBytes {
		t.Fatalf("log is %d bytes; the test needs more than %d", len(content), commands.MaxLogMaxBytes)
	}
	var got []string
	offset, reads := int64(0), 0
	for offset < int64(len(content)) {
		r := a.req(t, "logs", `{"worker_id":"big","offset":`+strconv.FormatInt(offset, 10)+`,"max_bytes":1048576}`)
		if !r.OK {
			t.Fatalf("read at offset %d: got %s, want ok", offset, r.Error)
		}
		if int64(len(r.raw)) > a.nc.MaxPayload() {
			t.Fatalf("reply of %d bytes is over the max payload %d", len(r.raw), a.nc.MaxPayload())
		}
		var res wire.LogsResult
		if err := json.Unmarshal(r.Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.Offset <= offset {
			t.Fatalf("read at offset %d returned offset %d: no progress", offset, res.Offset)
		}
		if want := strings.Split(strings.TrimSuffix(string(content[offset:res.Offset]), "\n"), "\n"); !slices.Equal(res.Lines, want) {
			t.Fatalf("read at offset %d: %d lines are not the file's bytes %d-%d", offset, len(res.Lines), offset, res.Offset)
		}
		got = append(got, res.Lines...)
		offset = res.Offset
		reads++
	}
	if reads < 2 {
		t.Errorf("read %d bytes in %d read(s); a 1 MiB read of it cannot fit one reply", len(content), reads)
	}
	if want := strings.Split(strings.TrimSuffix(string(content), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("followed %d lines, the file has %d", len(got), len(want))
	}
	a.must(t, "delete", `{"worker_id":"big","grace_ms":1000}`, nil)
}
