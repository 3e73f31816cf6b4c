package commands_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

func TestLogs_Execute(t *testing.T) {
	running := spawner.Worker{WorkerID: "w1", PID: 4242, LogPath: "/logs/h1/w1.log"}
	read := spawner.LogRead{Path: running.LogPath, Lines: []string{"a", "b"}, Offset: 4, Size: 4}
	off := func(n int64) *int64 { return &n }
	tests := []struct {
		name      string
		body      string
		findErr   error
		read      spawner.LogRead
		readErr   error
		wantQuery spawner.LogQuery
		wantPath  string
		wantCode  string
	}{
		{"default lines", `{"worker_id":"w1"}`, nil, read, nil, spawner.LogQuery{Lines: 50}, running.LogPath, ""},
		{"zero lines", `{"worker_id":"w1","lines":0}`, nil, read, nil, spawner.LogQuery{Lines: 0}, running.LogPath, ""},
		{"offset with default max", `{"worker_id":"w1","offset":7}`, nil, read, nil, spawner.LogQuery{From: off(7), MaxBytes: 65536}, running.LogPath, ""},
		{"offset with max", `{"worker_id":"w1","offset":0,"max_bytes":1048576}`, nil, read, nil, spawner.LogQuery{From: off(0), MaxBytes: 1 << 20}, running.LogPath, ""},
		{"exited worker's log", `{"worker_id":"w1"}`, spawner.ErrWorkerNotFound, read, nil, spawner.LogQuery{Lines: 50}, "/logs/h1/w1.log", ""},
		{"no worker and no log", `{"worker_id":"w1"}`, spawner.ErrWorkerNotFound, spawner.LogRead{Missing: true}, nil, spawner.LogQuery{Lines: 50}, "/logs/h1/w1.log", wire.CodeNotFound},
		{"find fails", `{"worker_id":"w1"}`, errors.New("proc unreadable"), read, nil, spawner.LogQuery{}, "", wire.CodeInternal},
		{"read fails", `{"worker_id":"w1"}`, nil, read, errors.New("EIO"), spawner.LogQuery{Lines: 50}, running.LogPath, wire.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotQuery spawner.LogQuery
			var gotPath string
			sp := &fakeSpawner{
				t: t,
				FindFunc: func(context.Context, string) (spawner.Worker, error) {
					if tt.findErr != nil {
						return spawner.Worker{}, fmt.Errorf("w1: %w", tt.findErr)
					}
					return running, nil
				},
				ReadLogFunc: func(w spawner.Worker, q spawner.LogQuery) (spawner.LogRead, error) {
					gotQuery, gotPath = q, w.LogPath
					return tt.read, tt.readErr
				},
			}
			var n narration
			res, err := mustDecode(t, wire.KindLogs, tt.body).Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator()})
			if gotPath != tt.wantPath || !reflect.DeepEqual(gotQuery, tt.wantQuery) {
				t.Errorf("got ReadLog(%q, %+v), want (%q, %+v)", gotPath, gotQuery, tt.wantPath, tt.wantQuery)
			}
			if !checkOutcome(t, res, err, tt.wantCode) {
				return
			}
			want := wire.LogsResult{WorkerID: "w1", LogPath: tt.read.Path, Lines: tt.read.Lines, Offset: tt.read.Offset, Size: tt.read.Size, Running: tt.findErr == nil}
			if got, ok := res.(wire.LogsResult); !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("got result %#v, want %#v", res, want)
			}
		})
	}
}

// stoppingEvents records WorkerStopping calls next to the narration, so
// their order shows.
type stoppingEvents struct {
	n     *narration
	calls []string
}

func (e *stoppingEvents) WorkerStopping(w spawner.Worker, byJobID string, grace time.Duration) {
	e.n.narrator().Narrate("STOPPING", "", fmt.Sprintf("%s %s %s", w.WorkerID, byJobID, grace), commands.Fields{})
}

// The stopping event goes out once, before the first signal.
func TestDelete_StoppingBeforeFirstSignal(t *testing.T) {
	w := spawner.Worker{WorkerID: "w1", PID: 4242}
	sp := &fakeSpawner{t: t, StopFunc: func(_ context.Context, _ string, _ time.Duration, onSignal func(string, spawner.Worker)) (spawner.StopResult, error) {
		onSignal("SIGTERM", w)
		onSignal("SIGKILL", w)
		return spawner.StopResult{Worker: w, Signal: "SIGKILL"}, nil
	}}
	var n narration
	ev := &stoppingEvents{n: &n}
	cmd := mustDecode(t, wire.KindDelete, `{"job_id":"del-1","worker_id":"w1","grace_ms":1500}`)
	if _, err := cmd.Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator(), Events: ev}); err != nil {
		t.Fatal(err)
	}
	want := []string{"STOPPING", "worker_signal_sent", "worker_signal_sent"}
	if got := n.actions(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := n.events[0].Human; got != "w1 del-1 1.5s" {
		t.Errorf("got WorkerStopping(%s), want w1 del-1 1.5s", got)
	}
}
