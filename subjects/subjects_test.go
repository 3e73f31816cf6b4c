package subjects_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rbee/hive-agent/subjects"
)

func TestValidToken(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error // nil: accepted
	}{
		{"one letter", "a", nil},
		{"one digit", "7", nil},
		{"underscore", "_", nil},
		{"dash", "-", nil},
		{"every class", "AZaz09_-", nil},
		{"uuid", "3f2b8c1e-9d4a-4c6b-8e2f-1a2b3c4d5e6f", nil},
		{"worker id", "worker-0a1b2c3d", nil},
		{"64 chars", strings.Repeat("x", 64), nil},
		{"empty", "", subjects.ErrEmptyToken},
		{"dot alone", ".", subjects.ErrTokenChars},
		{"dot inside", "a.b", subjects.ErrTokenChars},
		{"star", "*", subjects.ErrTokenChars},
		{"gt", ">", subjects.ErrTokenChars},
		{"space", "a b", subjects.ErrTokenChars},
		{"tab", "tab\t", subjects.ErrTokenChars},
		{"newline", "a\n", subjects.ErrTokenChars},
		{"nul", "a\x00", subjects.ErrTokenChars},
		{"65 chars", strings.Repeat("x", 65), subjects.ErrTokenTooLong},
		{"non-ASCII", "é", subjects.ErrTokenChars},
		{"slash", "a/b", subjects.ErrTokenChars},
		{"colon", "cuda:0", subjects.ErrTokenChars},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := subjects.ValidToken(tt.in)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("ValidToken(%q) = %v, want nil", tt.in, got)
				}
				return
			}
			if !errors.Is(got, tt.want) {
				t.Fatalf("ValidToken(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// badIDs are ids every builder must refuse, with the sentinel each gives.
var badIDs = []struct {
	name string
	id   string
	want error
}{
	{"empty", "", subjects.ErrEmptyToken},
	{"dot", "a.b", subjects.ErrTokenChars},
	{"star", "*", subjects.ErrTokenChars},
	{"gt", ">", subjects.ErrTokenChars},
	{"space", "a b", subjects.ErrTokenChars},
	{"65 chars", strings.Repeat("x", 65), subjects.ErrTokenTooLong},
	{"non-ASCII", "é", subjects.ErrTokenChars},
}

func TestBuilders_GoodIDs(t *testing.T) {
	long := strings.Repeat("h", 64)
	tests := []struct {
		name  string
		build func() (string, error)
		want  string
	}{
		{"WorkerCommand spawn", func() (string, error) { return subjects.WorkerCommand("h1", subjects.Spawn) }, "hive.h1.worker.spawn"},
		{"WorkerCommand delete", func() (string, error) { return subjects.WorkerCommand("h1", subjects.Delete) }, "hive.h1.worker.delete"},
		{"WorkerCommand list", func() (string, error) { return subjects.WorkerCommand("h1", subjects.List) }, "hive.h1.worker.list"},
		{"WorkerCommand get", func() (string, error) { return subjects.WorkerCommand("h1", subjects.Get) }, "hive.h1.worker.get"},
		{"WorkerCommand 64-char hive", func() (string, error) { return subjects.WorkerCommand(long, subjects.List) }, "hive." + long + ".worker.list"},
		{"WorkerCommandPrefix", func() (string, error) { return subjects.WorkerCommandPrefix("my_hive-2") }, "hive.my_hive-2.worker"},
		{"WorkerCommandWildcard", func() (string, error) { return subjects.WorkerCommandWildcard("h1") }, "hive.h1.worker.>"},
		{"JobNarration", func() (string, error) { return subjects.JobNarration("job-1") }, "job.job-1.narration"},
		{"JobResult", func() (string, error) { return subjects.JobResult("job-1") }, "job.job-1.result"},
		{"WorkerEvent started", func() (string, error) { return subjects.WorkerEvent("h1", subjects.EventStarted) }, "hive.h1.events.worker.started"},
		{"WorkerEvent exited", func() (string, error) { return subjects.WorkerEvent("h1", subjects.EventExited) }, "hive.h1.events.worker.exited"},
		{"WorkerEvent stopping", func() (string, error) { return subjects.WorkerEvent("h1", subjects.EventStopping) }, "hive.h1.events.worker.stopping"},
		{"Inventory", func() (string, error) { return subjects.Inventory("h1") }, "hive.h1.events.inventory"},
		{"WorkerCommand logs", func() (string, error) { return subjects.WorkerCommand("h1", subjects.Logs) }, "hive.h1.worker.logs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.build()
			if err != nil {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuilders_BadIDs(t *testing.T) {
	builders := []struct {
		name  string
		field string // the field the error must name
		build func(id string) (string, error)
	}{
		{"WorkerCommand hive", "hive_id", func(id string) (string, error) { return subjects.WorkerCommand(id, subjects.Spawn) }},
		{"WorkerCommand command", "command", func(id string) (string, error) { return subjects.WorkerCommand("h1", id) }},
		{"WorkerCommandPrefix", "hive_id", subjects.WorkerCommandPrefix},
		{"WorkerCommandWildcard", "hive_id", subjects.WorkerCommandWildcard},
		{"JobNarration", "job_id", subjects.JobNarration},
		{"JobResult", "job_id", subjects.JobResult},
		{"WorkerEvent hive", "hive_id", func(id string) (string, error) { return subjects.WorkerEvent(id, subjects.EventStarted) }},
		{"WorkerEvent event", "event", func(id string) (string, error) { return subjects.WorkerEvent("h1", id) }},
		{"Inventory hive", "hive_id", func(id string) (string, error) { return subjects.Inventory(id) }},
	}
	for _, b := range builders {
		for _, bad := range badIDs {
			t.Run(b.name+"/"+bad.name, func(t *testing.T) {
				got, err := b.build(bad.id)
				if got != "" {
					t.Errorf("got subject %q, want none", got)
				}
				if !errors.Is(err, bad.want) {
					t.Fatalf("got error %v, want %v", err, bad.want)
				}
				if !strings.HasPrefix(err.Error(), b.field+" ") {
					t.Errorf("got error %q, want it to start with the field name %q", err, b.field)
				}
			})
		}
	}
}
