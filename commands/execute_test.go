package commands_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/spawner"
)

// fakeSpawner implements commands.Spawner with a function per method. A
// method whose function is nil fails the test that calls it.
type fakeSpawner struct {
	t *testing.T

	CheckDeviceFunc func(spawner.Device) error
	ResolveFunc     func(binary string) (string, error)
	StartFunc       func(ctx context.Context, spec spawner.Spec) (*spawner.Handle, error)
	ListFunc        func(ctx context.Context) ([]spawner.Worker, error)
	FindFunc        func(ctx context.Context, workerID string) (spawner.Worker, error)
	StopFunc        func(ctx context.Context, workerID string, grace time.Duration, onSignal func(sig string, w spawner.Worker)) (spawner.StopResult, error)
	LogTailFunc     func(w spawner.Worker, n int) ([]string, error)
	ReadLogFunc     func(w spawner.Worker, q spawner.LogQuery) (spawner.LogRead, error)
}

// CancelRestart finds no pending restart.
func (f *fakeSpawner) CancelRestart(string) bool            { return false }
func (f *fakeSpawner) StateOf(spawner.Worker) spawner.State { return spawner.StateRunning }
func (f *fakeSpawner) Departed() []spawner.Departed         { return nil }

var _ commands.Spawner = (*fakeSpawner)(nil)

func (f *fakeSpawner) unexpected(name string) {
	f.t.Helper()
	f.t.Fatalf("unexpected call to Spawner.%s", name)
}

func (f *fakeSpawner) HiveID() string { return "h1" }

func (f *fakeSpawner) CheckDevice(d spawner.Device) error {
	if f.CheckDeviceFunc == nil {
		f.unexpected("CheckDevice")
	}
	return f.CheckDeviceFunc(d)
}

func (f *fakeSpawner) Resolve(t string) (string, error) {
	if f.ResolveFunc == nil {
		f.unexpected("Resolve")
	}
	return f.ResolveFunc(t)
}

func (f *fakeSpawner) Start(ctx context.Context, spec spawner.Spec) (*spawner.Handle, error) {
	if f.StartFunc == nil {
		f.unexpected("Start")
	}
	return f.StartFunc(ctx, spec)
}

func (f *fakeSpawner) List(ctx context.Context) ([]spawner.Worker, error) {
	if f.ListFunc == nil {
		f.unexpected("List")
	}
	return f.ListFunc(ctx)
}

func (f *fakeSpawner) Find(ctx context.Context, workerID string) (spawner.Worker, error) {
	if f.FindFunc == nil {
		f.unexpected("Find")
	}
	return f.FindFunc(ctx, workerID)
}

func (f *fakeSpawner) Stop(ctx context.Context, workerID string, grace time.Duration, onSignal func(sig string, w spawner.Worker)) (spawner.StopResult, error) {
	if f.StopFunc == nil {
		f.unexpected("Stop")
	}
	return f.StopFunc(ctx, workerID, grace, onSignal)
}

func (f *fakeSpawner) WorkerLogTail(w spawner.Worker, n int) ([]string, error) {
	if f.LogTailFunc == nil {
		f.unexpected("WorkerLogTail")
	}
	return f.LogTailFunc(w, n)
}

func (f *fakeSpawner) ReadLog(w spawner.Worker, q spawner.LogQuery) (spawner.LogRead, error) {
	if f.ReadLogFunc == nil {
		f.unexpected("ReadLog")
	}
	return f.ReadLogFunc(w, q)
}

func (f *fakeSpawner) LogPathOf(workerID string) string { return "/logs/h1/" + workerID + ".log" }

// event is one narration event.
type event struct {
	Action, Level, Human string
	Fields               commands.Fields
}

// narration collects narration events.
type narration struct {
	mu     sync.Mutex
	events []event
}

func (n *narration) narrator() commands.Narrator {
	return commands.NarratorFunc(func(action, level, human string, f commands.Fields) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.events = append(n.events, event{action, level, human, f})
	})
}

func (n *narration) actions() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var as []string
	for _, e := range n.events {
		as = append(as, e.Action)
	}
	return as
}

// mustDecode decodes body as kind and fails t on an error.
func mustDecode(t *testing.T, kind, body string) commands.Command {
	t.Helper()
	cmd, _, err := commands.Decode(kind, []byte(body))
	if err != nil {
		t.Fatalf("Decode(%s, %s): got error %v, want none", kind, body, err)
	}
	return cmd
}

// checkCode fails t unless err maps to code.
func checkCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want code %q", code)
	}
	if got := commands.ToError(err).Code; got != code {
		t.Fatalf("got code %q (error %v), want %q", got, err, code)
	}
}

var defaults = commands.Defaults{
	QueenURL:     "http://queen.default:7833",
	Wait:         commands.WaitAlive,
	AliveWindow:  2 * time.Second,
	ReadyTimeout: time.Minute,
}

func TestSpawn_ExecuteFailsBeforeStart(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		deviceErr   error
		resolveErr  error
		wantDevice  spawner.Device
		wantResolve bool
		wantCode    string
	}{
		{
			name:       "device unavailable",
			body:       `{"model_id":"m","device":"cuda:3"}`,
			deviceErr:  fmt.Errorf("cuda:3: host has 1 GPU: %w", spawner.ErrDeviceUnavailable),
			wantDevice: spawner.Device{Raw: "cuda:3", Type: spawner.CUDA, Index: 3},
			wantCode:   commands.CodeDeviceUnavailable,
		},
		{
			name:       "metal unavailable",
			body:       `{"model_id":"m","device":"metal"}`,
			deviceErr:  fmt.Errorf("metal on linux: %w", spawner.ErrDeviceUnavailable),
			wantDevice: spawner.Device{Raw: "metal", Type: spawner.Metal, Index: -1},
			wantCode:   commands.CodeDeviceUnavailable,
		},
		{
			name:        "binary not found",
			body:        `{"model_id":"m","device":"CPU-2"}`,
			resolveErr:  fmt.Errorf("cpu-llm-worker-rbee in /opt/w and PATH: %w", spawner.ErrBinaryNotFound),
			wantDevice:  spawner.Device{Raw: "CPU-2", Type: spawner.CPU, Index: 2},
			wantResolve: true,
			wantCode:    commands.CodeBinaryNotFound,
		},
		{
			name:        "binary not found for GPU-N",
			body:        `{"model_id":"m","device":"GPU-1"}`,
			resolveErr:  fmt.Errorf("cuda-llm-worker-rbee: %w", spawner.ErrBinaryNotFound),
			wantDevice:  spawner.Device{Raw: "GPU-1", Type: spawner.CUDA, Index: 1},
			wantResolve: true,
			wantCode:    commands.CodeBinaryNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotDevice spawner.Device
			var gotType string
			resolved := false
			sp := &fakeSpawner{
				t: t,
				CheckDeviceFunc: func(d spawner.Device) error {
					gotDevice = d
					return tt.deviceErr
				},
				ResolveFunc: func(wt string) (string, error) {
					resolved = true
					gotType = wt
					return "", tt.resolveErr
				},
				// StartFunc is nil: Start must not be called.
			}
			var n narration
			cmd := mustDecode(t, commands.KindSpawn, tt.body)
			res, err := cmd.Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator(), Defaults: defaults})
			checkCode(t, err, tt.wantCode)
			if res != nil {
				t.Errorf("got result %#v with the error, want nil", res)
			}
			if gotDevice != tt.wantDevice {
				t.Errorf("got CheckDevice(%+v), want %+v", gotDevice, tt.wantDevice)
			}
			if resolved != tt.wantResolve {
				t.Errorf("got Resolve called: %v, want %v", resolved, tt.wantResolve)
			}
			if tt.wantResolve && gotType != tt.wantDevice.Type.Binary() {
				t.Errorf("got Resolve(%q), want %q", gotType, tt.wantDevice.Type)
			}
			if got := n.actions(); len(got) != 0 {
				t.Errorf("got narration %v, want none before the binary is resolved", got)
			}
		})
	}
}

func TestSpawn_ExecuteAlreadyRunning(t *testing.T) {
	running := spawner.Worker{
		HiveID: "h1", WorkerID: "w1", JobID: "job-0", CommandID: "c1", ModelID: "m", Device: "cpu",
		WorkerType: spawner.CPU, Port: 9101, PID: 4242, StartTime: 1_790_000_000_123,
		BinaryPath: "/opt/w/cpu-llm-worker-rbee", LogPath: "/var/log/h1/w1.log",
	}
	tests := []struct {
		name     string
		body     string
		wantSpec spawner.Spec
		wantErr  string // wire code; "" means an ok result with Existing
		wantWait string
	}{
		{
			name: "same command id is a retry",
			body: `{"model_id":"m","device":"cpu","worker_id":"w1","job_id":"job-1","command_id":"c1"}`,
			wantSpec: spawner.Spec{
				WorkerID: "w1", ModelID: "m", Device: spawner.Device{Raw: "cpu", Type: spawner.CPU, Index: -1},
				Restart: spawner.RestartPolicy{Max: 3}, BinaryPath: "/bin/cpu-llm-worker-rbee", QueenURL: defaults.QueenURL, JobID: "job-1", CommandID: "c1",
			},
			// A resend waits as the first did: this worker has been up
			// longer than the alive window.
			wantWait: commands.WaitAlive,
		},
		{
			name: "same command id with every option",
			body: `{"model_id":"m","device":"cpu","worker_id":"w1","job_id":"job-1","command_id":"c1",` +
				`"port":9101,"queen_url":"https://q:1","wait":"exec","wait_timeout_ms":10}`,
			wantSpec: spawner.Spec{
				WorkerID: "w1", ModelID: "m", Device: spawner.Device{Raw: "cpu", Type: spawner.CPU, Index: -1},
				Restart: spawner.RestartPolicy{Max: 3}, BinaryPath: "/bin/cpu-llm-worker-rbee", Port: 9101, QueenURL: "https://q:1", JobID: "job-1", CommandID: "c1",
			},
			wantWait: commands.WaitExec,
		},
		{
			name: "another command id is a conflict",
			body: `{"model_id":"m","device":"cpu","worker_id":"w1","job_id":"job-2","command_id":"c2"}`,
			wantSpec: spawner.Spec{
				WorkerID: "w1", ModelID: "m", Device: spawner.Device{Raw: "cpu", Type: spawner.CPU, Index: -1},
				Restart: spawner.RestartPolicy{Max: 3}, BinaryPath: "/bin/cpu-llm-worker-rbee", QueenURL: defaults.QueenURL, JobID: "job-2", CommandID: "c2",
			},
			wantErr: commands.CodeConflict,
		},
		{
			name: "generated command id is a conflict",
			body: `{"model_id":"m","device":"cpu","worker_id":"w1","job_id":"job-3"}`,
			wantSpec: spawner.Spec{
				WorkerID: "w1", ModelID: "m", Device: spawner.Device{Raw: "cpu", Type: spawner.CPU, Index: -1},
				Restart: spawner.RestartPolicy{Max: 3}, BinaryPath: "/bin/cpu-llm-worker-rbee", QueenURL: defaults.QueenURL, JobID: "job-3",
			},
			wantErr: commands.CodeConflict,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var specs []spawner.Spec
			sp := &fakeSpawner{
				t:               t,
				CheckDeviceFunc: func(spawner.Device) error { return nil },
				ResolveFunc:     func(string) (string, error) { return "/bin/cpu-llm-worker-rbee", nil },
				StartFunc: func(_ context.Context, spec spawner.Spec) (*spawner.Handle, error) {
					specs = append(specs, spec)
					return nil, fmt.Errorf("start: %w", &spawner.RunningError{Worker: running})
				},
				FindFunc: func(context.Context, string) (spawner.Worker, error) { return running, nil },
			}
			var n narration
			cmd := mustDecode(t, commands.KindSpawn, tt.body)
			res, err := cmd.Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator(), Defaults: defaults})

			if len(specs) != 1 {
				t.Fatalf("got %d calls to Start, want 1", len(specs))
			}
			want := tt.wantSpec
			if want.CommandID == "" {
				want.CommandID = cmd.Env().CommandID
			}
			want.WorkerType, want.HealthPath, want.ReadyStatus = spawner.CPU, "/health", 200
			// The built-in type renders exactly the rbee worker's arguments.
			args, env, rerr := specs[0].Command(9105)
			wantArgs := []string{"--worker-id", "w1", "--model", "m", "--device", "cpu", "--port", "9105", "--queen-url", want.QueenURL}
			if rerr != nil || !reflect.DeepEqual(args, wantArgs) || len(env) != 0 {
				t.Errorf("got Command(9105) = %q, %q, %v; want %q and no environment", args, env, rerr, wantArgs)
			}
			specs[0].Command = nil
			if !reflect.DeepEqual(specs[0], want) {
				t.Errorf("got Start(%+v), want %+v", specs[0], want)
			}

			if tt.wantErr != "" {
				checkCode(t, err, tt.wantErr)
				if res != nil {
					t.Errorf("got result %#v with the error, want nil", res)
				}
				if got, want := n.actions(), []string{"worker_binary_resolved"}; !reflect.DeepEqual(got, want) {
					t.Errorf("got narration %v, want %v", got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want an ok result", err)
			}
			wantRes := commands.SpawnResult{
				WorkerID: "w1", PID: 4242, Port: 9101, Device: "cpu", WorkerType: "cpu-llm", ModelID: "m",
				BinaryPath: "/opt/w/cpu-llm-worker-rbee", LogPath: "/var/log/h1/w1.log",
				StartedAt: "2026-09-21T14:13:20.123Z", Wait: tt.wantWait, Existing: true,
			}
			if got, ok := res.(commands.SpawnResult); !ok || got != wantRes {
				t.Errorf("got result %#v, want %#v", res, wantRes)
			}
			wantActions := []string{"worker_binary_resolved", "worker_already_running"}
			if tt.wantWait == commands.WaitAlive {
				wantActions = append(wantActions, "worker_alive")
			}
			if got := n.actions(); !reflect.DeepEqual(got, wantActions) {
				t.Errorf("got narration %v, want %v", got, wantActions)
			}
			if last := n.events[len(n.events)-1]; last.Fields != (commands.Fields{WorkerID: "w1", PID: 4242}) || last.Level != commands.LevelInfo {
				t.Errorf("got last event %+v, want info about w1 pid 4242", last)
			}
		})
	}
}

func TestToError(t *testing.T) {
	badReq := commands.BadRequest("port", "%d: want 1024-65535", 1)
	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantMessage []string // substrings of the message
		wantSame    *commands.Error
	}{
		{"binary not found", fmt.Errorf("resolve cpu-llm: %w", spawner.ErrBinaryNotFound), commands.CodeBinaryNotFound, []string{"resolve cpu-llm"}, nil},
		{"device unavailable", fmt.Errorf("cuda:3: %w", spawner.ErrDeviceUnavailable), commands.CodeDeviceUnavailable, []string{"cuda:3"}, nil},
		{"worker not found", fmt.Errorf("find w1: %w", spawner.ErrWorkerNotFound), commands.CodeNotFound, []string{"w1"}, nil},
		{"worker running", fmt.Errorf("start w1: %w", spawner.ErrWorkerRunning), commands.CodeConflict, []string{"start w1"}, nil},
		{"running error", &spawner.RunningError{Worker: spawner.Worker{WorkerID: "w1", PID: 7, CommandID: "c9"}}, commands.CodeConflict, []string{"w1", "c9"}, nil},
		{"port taken", fmt.Errorf("port 9001: %w", spawner.ErrPortTaken), commands.CodeConflict, []string{"9001"}, nil},
		{"no free port", fmt.Errorf("range 9100-9199: %w", spawner.ErrNoFreePort), commands.CodeConflict, []string{"9100-9199"}, nil},
		{"spawn failed", fmt.Errorf("exec: %w", spawner.ErrSpawn), commands.CodeSpawnFailed, []string{"exec"}, nil},
		{"worker exited sentinel", fmt.Errorf("w1: %w", spawner.ErrWorkerExited), commands.CodeWorkerExited, []string{"w1"}, nil},
		{"not ready", fmt.Errorf("health after 1m: %w", spawner.ErrNotReady), commands.CodeNotReady, []string{"health after 1m"}, nil},
		{
			"exited error with log tail",
			&spawner.ExitedError{
				Worker:  spawner.Worker{WorkerID: "w1", PID: 4242},
				Exit:    spawner.Exit{Code: 3, RanMS: 150},
				LogTail: []string{"loading model", "error: out of memory"},
			},
			commands.CodeWorkerExited,
			[]string{"w1", "4242", "exited with status 3", "150 ms", "\nloading model\nerror: out of memory"},
			nil,
		},
		{
			"wrapped exited error killed by a signal",
			fmt.Errorf("wait alive: %w", &spawner.ExitedError{
				Worker:  spawner.Worker{WorkerID: "w2", PID: 9},
				Exit:    spawner.Exit{Code: -1, Signal: "SIGKILL", RanMS: 5},
				LogTail: []string{"only line"},
			}),
			commands.CodeWorkerExited,
			[]string{"w2", "killed by SIGKILL", "only line"},
			nil,
		},
		{"command error passes through", badReq, commands.CodeBadRequest, nil, badReq},
		{"wrapped command error passes through", fmt.Errorf("x: %w", badReq), commands.CodeBadRequest, nil, badReq},
		{"plain error", errors.New("boom"), commands.CodeInternal, []string{"boom"}, nil},
		{"canceled", fmt.Errorf("list: %w", context.Canceled), commands.CodeInternal, []string{"interrupted", "canceled"}, nil},
		{"deadline", context.DeadlineExceeded, commands.CodeInternal, []string{"interrupted"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := commands.ToError(tt.err)
			if got == nil {
				t.Fatal("got nil, want an error")
			}
			if got.Code != tt.wantCode {
				t.Errorf("got code %q, want %q", got.Code, tt.wantCode)
			}
			if tt.wantSame != nil && got != tt.wantSame {
				t.Errorf("got %#v, want the same *Error %#v", got, tt.wantSame)
			}
			for _, s := range tt.wantMessage {
				if !strings.Contains(got.Message, s) {
					t.Errorf("got message %q, want it to contain %q", got.Message, s)
				}
			}
			if tt.wantSame == nil && got.Field != "" {
				t.Errorf("got field %q, want none", got.Field)
			}
		})
	}
}

func TestDelete_Execute(t *testing.T) {
	stopped := spawner.Worker{WorkerID: "w1", PID: 4242}
	tests := []struct {
		name      string
		body      string
		signals   []string // what the fake Stop reports through onSignal
		stopErr   error
		wantGrace time.Duration
		wantLevel []string
		wantCode  string
	}{
		{"default grace", `{"worker_id":"w1"}`, []string{"SIGTERM"}, nil, 5 * time.Second, []string{commands.LevelInfo}, ""},
		{"zero grace", `{"worker_id":"w1","grace_ms":0}`, []string{"SIGTERM", "SIGKILL"}, nil, 0, []string{commands.LevelInfo, commands.LevelWarn}, ""},
		{"grace 1500 ms", `{"worker_id":"w1","grace_ms":1500}`, []string{"SIGTERM", "SIGKILL"}, nil, 1500 * time.Millisecond, []string{commands.LevelInfo, commands.LevelWarn}, ""},
		{"max grace", `{"worker_id":"w1","grace_ms":60000}`, []string{"SIGTERM"}, nil, time.Minute, []string{commands.LevelInfo}, ""},
		{"windows: CTRL_BREAK heeded", `{"worker_id":"w1","grace_ms":1500}`, []string{"CTRL_BREAK"}, nil, 1500 * time.Millisecond, []string{commands.LevelInfo}, ""},
		{"windows: then TERMINATE", `{"worker_id":"w1","grace_ms":1500}`, []string{"CTRL_BREAK", "TERMINATE"}, nil, 1500 * time.Millisecond, []string{commands.LevelInfo, commands.LevelWarn}, ""},
		{"not found", `{"worker_id":"w1"}`, nil, fmt.Errorf("find w1: %w", spawner.ErrWorkerNotFound), 5 * time.Second, nil, commands.CodeNotFound},
		{"other error", `{"worker_id":"w1"}`, nil, errors.New("permission denied"), 5 * time.Second, nil, commands.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotID string
			var gotGrace time.Duration
			sp := &fakeSpawner{
				t: t,
				StopFunc: func(_ context.Context, id string, grace time.Duration, onSignal func(string, spawner.Worker)) (spawner.StopResult, error) {
					gotID, gotGrace = id, grace
					if tt.stopErr != nil {
						return spawner.StopResult{}, tt.stopErr
					}
					for _, s := range tt.signals {
						onSignal(s, stopped)
					}
					return spawner.StopResult{Worker: stopped, Signal: tt.signals[len(tt.signals)-1], StoppedMS: 1234}, nil
				},
			}
			var n narration
			cmd := mustDecode(t, commands.KindDelete, tt.body)
			res, err := cmd.Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator()})
			if gotID != "w1" {
				t.Errorf("got Stop(%q), want Stop(%q)", gotID, "w1")
			}
			if gotGrace != tt.wantGrace {
				t.Errorf("got grace %v, want %v", gotGrace, tt.wantGrace)
			}
			if !checkOutcome(t, res, err, tt.wantCode) {
				return
			}
			want := commands.DeleteResult{WorkerID: "w1", PID: 4242, Signal: tt.signals[len(tt.signals)-1], StoppedMS: 1234}
			if got, ok := res.(commands.DeleteResult); !ok || got != want {
				t.Errorf("got result %#v, want %#v", res, want)
			}
			if len(n.events) != len(tt.wantLevel) {
				t.Fatalf("got %d narration events %v, want %d", len(n.events), n.actions(), len(tt.wantLevel))
			}
			for i, e := range n.events {
				if e.Action != "worker_signal_sent" || e.Level != tt.wantLevel[i] || e.Fields != (commands.Fields{WorkerID: "w1", PID: 4242}) {
					t.Errorf("got event %d %+v, want worker_signal_sent at %s about w1 pid 4242", i, e, tt.wantLevel[i])
				}
				if !strings.Contains(e.Human, tt.signals[i]) {
					t.Errorf("got event %d text %q, want it to name %s", i, e.Human, tt.signals[i])
				}
			}
		})
	}
}

func TestList_Execute(t *testing.T) {
	now := time.Date(2026, 11, 26, 17, 0, 10, 0, time.UTC)
	started := time.Date(2026, 11, 26, 17, 0, 0, 500_000_000, time.UTC)
	w1 := spawner.Worker{
		HiveID: "h1", WorkerID: "w1", JobID: "job-1", CommandID: "c1", ModelID: "meta-llama/Llama-3-8b",
		Device: "cuda:0", WorkerType: spawner.CUDA, Port: 9101, PID: 4242, StartTime: started.UnixMilli(),
		BinaryPath: "/opt/w/cuda-llm-worker-rbee", LogPath: "/logs/h1/w1.log", RSSBytes: 1 << 30,
	}
	w2 := spawner.Worker{
		WorkerID: "w2", ModelID: "m", Device: "cpu", WorkerType: spawner.CPU, PID: 7,
		StartTime: now.Add(time.Second).UnixMilli(), // clock skew: in the future
	}
	info1 := commands.WorkerInfo{
		WorkerID: "w1", PID: 4242, WorkerType: "cuda-llm", ModelID: "meta-llama/Llama-3-8b", Device: "cuda:0",
		Port: 9101, JobID: "job-1", StartedAt: "2026-11-26T17:00:00.500Z", UptimeMS: 9500, RSSBytes: 1 << 30,
		BinaryPath: "/opt/w/cuda-llm-worker-rbee", LogPath: "/logs/h1/w1.log", WorkerStatus: commands.WorkerStatus{State: "running"},
	}
	info2 := commands.WorkerInfo{
		WorkerID: "w2", PID: 7, WorkerType: "cpu-llm", ModelID: "m", Device: "cpu",
		StartedAt: "2026-11-26T17:00:11.000Z", UptimeMS: 0, WorkerStatus: commands.WorkerStatus{State: "running"},
	}
	tests := []struct {
		name     string
		workers  []spawner.Worker
		listErr  error
		want     []commands.WorkerInfo
		wantCode string
	}{
		{"none", nil, nil, []commands.WorkerInfo{}, ""},
		{"one", []spawner.Worker{w1}, nil, []commands.WorkerInfo{info1}, ""},
		{"two in order, uptime never negative", []spawner.Worker{w1, w2}, nil, []commands.WorkerInfo{info1, info2}, ""},
		{"error", nil, errors.New("read /proc: boom"), nil, commands.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := &fakeSpawner{
				t:        t,
				ListFunc: func(context.Context) ([]spawner.Worker, error) { return tt.workers, tt.listErr },
			}
			var n narration
			cmd := mustDecode(t, commands.KindList, "")
			res, err := cmd.Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator(), Now: func() time.Time { return now }})
			if tt.wantCode != "" {
				checkCode(t, err, tt.wantCode)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			got, ok := res.(commands.ListResult)
			if !ok {
				t.Fatalf("got result %#v, want a ListResult", res)
			}
			if got.Workers == nil {
				t.Error("got nil workers, want an empty list (it is [] on the wire)")
			}
			if !reflect.DeepEqual(got.Workers, tt.want) {
				t.Errorf("got workers %+v, want %+v", got.Workers, tt.want)
			}
		})
	}
}

func TestGet_Execute(t *testing.T) {
	now := time.Date(2026, 11, 26, 17, 1, 0, 0, time.UTC)
	w := spawner.Worker{
		WorkerID: "w1", JobID: "job-1", ModelID: "m", Device: "cpu", WorkerType: spawner.CPU, Port: 9100,
		PID: 4242, StartTime: now.Add(-time.Minute).UnixMilli(), BinaryPath: "/b", LogPath: "/logs/w1.log", RSSBytes: 42,
	}
	wantInfo := commands.WorkerInfo{
		WorkerID: "w1", PID: 4242, WorkerType: "cpu-llm", ModelID: "m", Device: "cpu", Port: 9100, JobID: "job-1",
		StartedAt: "2026-11-26T17:00:00.000Z", UptimeMS: 60_000, RSSBytes: 42, BinaryPath: "/b", LogPath: "/logs/w1.log",
		WorkerStatus: commands.WorkerStatus{State: "running"},
	}
	tests := []struct {
		name      string
		body      string
		findErr   error
		tailErr   error
		tail      []string
		wantLines int
		wantCode  string
	}{
		{"default lines", `{"worker_id":"w1"}`, nil, nil, []string{"a", "b"}, commands.DefaultLogLines, ""},
		{"zero lines", `{"worker_id":"w1","log_lines":0}`, nil, nil, []string{}, 0, ""},
		{"max lines", `{"worker_id":"w1","log_lines":1000}`, nil, nil, []string{"x"}, 1000, ""},
		{"three lines", `{"worker_id":"w1","log_lines":3}`, nil, nil, []string{"1", "2", "3"}, 3, ""},
		{"not found", `{"worker_id":"w1"}`, fmt.Errorf("w1: %w", spawner.ErrWorkerNotFound), nil, nil, -1, commands.CodeNotFound},
		{"log unreadable", `{"worker_id":"w1"}`, nil, errors.New("permission denied"), nil, commands.DefaultLogLines, commands.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotLines := -1
			var gotFind, gotPath string
			sp := &fakeSpawner{
				t: t,
				FindFunc: func(_ context.Context, id string) (spawner.Worker, error) {
					gotFind = id
					return w, tt.findErr
				},
				LogTailFunc: func(w spawner.Worker, n int) ([]string, error) {
					gotPath, gotLines = w.LogPath, n
					return tt.tail, tt.tailErr
				},
			}
			var n narration
			cmd := mustDecode(t, commands.KindGet, tt.body)
			res, err := cmd.Execute(context.Background(), commands.Deps{Spawner: sp, Narrator: n.narrator(), Now: func() time.Time { return now }})
			if gotFind != "w1" {
				t.Errorf("got Find(%q), want Find(%q)", gotFind, "w1")
			}
			if gotLines != tt.wantLines {
				t.Errorf("got LogTail lines %d, want %d", gotLines, tt.wantLines)
			}
			if tt.wantLines >= 0 && gotPath != w.LogPath {
				t.Errorf("got LogTail path %q, want %q", gotPath, w.LogPath)
			}
			if !checkOutcome(t, res, err, tt.wantCode) {
				return
			}
			want := commands.GetResult{WorkerInfo: wantInfo, LogTail: tt.tail}
			if got, ok := res.(commands.GetResult); !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("got result %#v, want %#v", res, want)
			}
		})
	}
}

// checkOutcome checks an Execute outcome against wantCode ("" for success)
// and reports whether there is a result left to check.
func checkOutcome(t *testing.T, res any, err error, wantCode string) bool {
	t.Helper()
	if wantCode != "" {
		checkCode(t, err, wantCode)
		if res != nil {
			t.Errorf("got result %#v with the error, want nil", res)
		}
		return false
	}
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	return true
}
