//go:build unix

package consumer_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

func TestConsumer_SpawnThenDelete(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	narr := a.watch(t, "job.j-spawn.narration")
	result := a.watch(t, "job.j-spawn.result")
	started := a.watch(t, "hive."+a.hive+".events.worker.started")
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")

	var sp wire.SpawnResult
	r := a.must(t, "spawn", `{"job_id":"j-spawn","command_id":"c1","worker_id":"w1","model_id":"meta-llama/Llama-3-8b","device":"cpu"}`, &sp)
	if r.Kind != "worker.spawn" || r.HiveID != a.hive || r.JobID != "j-spawn" || r.CommandID != "c1" {
		t.Errorf("envelope: got %s", r.raw)
	}
	if sp.WorkerID != "w1" || sp.Device != "cpu" || sp.WorkerType != "cpu-llm" || sp.Wait != "alive" || sp.Existing {
		t.Errorf("result: got %+v", sp)
	}
	if sp.Port < 9400 || sp.Port > 9599 {
		t.Errorf("port %d outside the configured range 9400-9599", sp.Port)
	}
	if !testenv.Alive(sp.PID) {
		t.Fatalf("pid %d from the reply is not running", sp.PID)
	}
	wantArgs := []string{sp.BinaryPath, "--worker-id", "w1", "--model", "meta-llama/Llama-3-8b", "--device", "cpu",
		"--port", strconv.Itoa(sp.Port), "--queen-url", "http://localhost:7833"}
	if got := testenv.Cmdline(sp.PID); !slices.Equal(got, wantArgs) {
		t.Errorf("command line:\n got %q\nwant %q", got, wantArgs)
	}
	env := testenv.Environ(sp.PID)
	for k, v := range map[string]string{"HIVE_AGENT_HIVE_ID": a.hive, "HIVE_AGENT_WORKER_ID": "w1",
		"HIVE_AGENT_JOB_ID": "j-spawn", "HIVE_AGENT_COMMAND_ID": "c1"} {
		if env[k] != v {
			t.Errorf("environment %s: got %q, want %q", k, env[k], v)
		}
	}

	// The job result is the reply, byte for byte; narration is in order.
	res := result.waitFor(t, "job result", result.count(1))
	if string(res[0]) != string(r.raw) {
		t.Errorf("job result differs from the reply:\n%s\n%s", res[0], r.raw)
	}
	evs := events(t, narr.waitFor(t, "spawn end event", hasEnd(t)))
	checkNarration(t, evs, a.hive, "j-spawn")
	wantActions := []string{"worker_spawn_start", "worker_binary_resolved", "worker_process_started", "worker_alive", "worker_spawned"}
	if got := actions(evs); !slices.Equal(got, wantActions) {
		t.Errorf("actions: got %v, want %v", got, wantActions)
	}
	if end := evs[len(evs)-1]; end.WorkerID != "w1" || end.PID != sp.PID {
		t.Errorf("end event: got worker %q pid %d", end.WorkerID, end.PID)
	}
	var st wire.StartedEvent
	json.Unmarshal(started.waitFor(t, "started event", started.count(1))[0], &st)
	if st.WorkerID != "w1" || st.PID != sp.PID || st.Port != sp.Port || st.JobID != "j-spawn" || st.ModelID != "meta-llama/Llama-3-8b" || st.WorkerType != "cpu-llm" {
		t.Errorf("started event: got %+v", st)
	}

	// Its SIGTERM handler is in place once it listens (the alive window
	// alone does not promise that on a loaded machine).
	waitLogLine(t, sp.LogPath, "testworker: listening on")
	delNarr := a.watch(t, "job.j-del.narration")
	var del wire.DeleteResult
	a.must(t, "delete", `{"job_id":"j-del","worker_id":"w1"}`, &del)
	if del.WorkerID != "w1" || del.PID != sp.PID || del.Signal != "SIGTERM" {
		t.Errorf("delete result: got %+v", del)
	}
	if testenv.Alive(sp.PID) {
		t.Errorf("pid %d still running after delete", sp.PID)
	}
	devs := events(t, delNarr.waitFor(t, "delete end event", hasEnd(t)))
	checkNarration(t, devs, a.hive, "j-del")
	if got, want := actions(devs), []string{"worker_delete_start", "worker_signal_sent", "worker_deleted"}; !slices.Equal(got, want) {
		t.Errorf("delete actions: got %v, want %v", got, want)
	}
	var ex wire.ExitedEvent
	json.Unmarshal(exited.waitFor(t, "exited event", exited.count(1))[0], &ex)
	if ex.WorkerID != "w1" || ex.PID != sp.PID || ex.ExitCode == nil || *ex.ExitCode != 0 || ex.Signal != "" || ex.JobID != "j-spawn" {
		t.Errorf("exited event: got %+v", ex)
	}
	if !strings.Contains(strings.Join(ex.LogTail, "\n"), "got SIGTERM") {
		t.Errorf("exited event log tail lacks the worker's last words: %q", ex.LogTail)
	}
	// The worker's end is narrated on the spawning job, after its own end, continuing its seq.
	all := events(t, narr.waitFor(t, "worker_exited on the spawn job", narr.count(len(evs)+1)))
	last := all[len(all)-1]
	if last.Action != "worker_exited" || last.Seq != uint64(len(evs)+1) || last.WorkerID != "w1" {
		t.Errorf("exit narration: got %+v", last)
	}
	a.stillServes(t)
}

func TestConsumer_DeleteKillsWorkerThatIgnoresSIGTERM(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"stubborn","model_id":"m@ignore-term","device":"cpu","wait":"ready"}`, &sp)
	narr := a.watch(t, "job.j-kill.narration")
	var del wire.DeleteResult
	a.must(t, "delete", `{"job_id":"j-kill","worker_id":"stubborn","grace_ms":300}`, &del)
	if del.Signal != "SIGKILL" {
		t.Errorf("signal: got %q, want SIGKILL", del.Signal)
	}
	if del.StoppedMS < 300 {
		t.Errorf("stopped_ms %d: SIGKILL must only come after the 300 ms grace", del.StoppedMS)
	}
	if testenv.Alive(sp.PID) {
		t.Errorf("pid %d still running", sp.PID)
	}
	evs := events(t, narr.waitFor(t, "end", hasEnd(t)))
	var levels []string
	for _, e := range evs {
		if e.Action == "worker_signal_sent" {
			levels = append(levels, e.Level)
		}
	}
	if !slices.Equal(levels, []string{"info", "warn"}) {
		t.Errorf("signal narration levels: got %v, want [info warn] (SIGTERM then SIGKILL)", levels)
	}
	var ex wire.ExitedEvent
	json.Unmarshal(exited.waitFor(t, "exited", exited.count(1))[0], &ex)
	if ex.Signal != "SIGKILL" || ex.ExitCode != nil {
		t.Errorf("exited event: got signal %q exit_code %v, want SIGKILL and no exit code", ex.Signal, ex.ExitCode)
	}
}

func TestConsumer_DeleteStopsForkedChildren(t *testing.T) {
	for _, mode := range []string{"fork", "fork-ignore-term"} {
		t.Run(mode, func(t *testing.T) {
			a := startAgent(t, testenv.NATS(t))
			var sp wire.SpawnResult
			a.must(t, "spawn", `{"worker_id":"parent","model_id":"m@`+mode+`","device":"cpu","wait":"ready"}`, &sp)
			waitLogLine(t, sp.LogPath, "testworker child pid") // its child set up too
			members := testenv.GroupMembers(sp.PID)
			if len(members) != 2 {
				t.Fatalf("process group %d: got members %v, want the worker and its child", sp.PID, members)
			}
			var del wire.DeleteResult
			a.must(t, "delete", `{"worker_id":"parent","grace_ms":500}`, &del)
			for _, pid := range members {
				if testenv.Alive(pid) {
					t.Errorf("pid %d of the worker's group still running after delete", pid)
				}
			}
			if want := map[string]string{"fork": "SIGTERM", "fork-ignore-term": "SIGKILL"}[mode]; del.Signal != want {
				t.Errorf("signal: got %q, want %q", del.Signal, want)
			}
		})
	}
}

func TestConsumer_CrashAtStartIsWorkerExited(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	narr := a.watch(t, "job.j-crash.narration")
	r := a.req(t, "spawn", `{"job_id":"j-crash","worker_id":"crashy","model_id":"m@crash","device":"cpu"}`)
	wantError(t, r, wire.CodeWorkerExited, "")
	for _, want := range []string{"exited with status 3", "crashing at start as asked"} {
		if !strings.Contains(r.Error.Message, want) {
			t.Errorf("message %q lacks %q", r.Error.Message, want)
		}
	}
	var ex wire.ExitedEvent
	json.Unmarshal(exited.waitFor(t, "exited", exited.count(1))[0], &ex)
	if ex.ExitCode == nil || *ex.ExitCode != 3 || ex.WorkerID != "crashy" {
		t.Errorf("exited event: got %+v", ex)
	}
	evs := events(t, narr.waitFor(t, "end", hasEnd(t)))
	checkNarration(t, evs, a.hive, "j-crash")
	got := actions(evs)
	if len(got) < 2 || got[len(got)-2] != "worker_exited" {
		t.Errorf("actions %v: want worker_exited just before the end", got)
	}
	if i := slices.Index(got, "worker_process_started"); i < 0 || i > slices.Index(got, "worker_exited") {
		t.Errorf("actions %v: want worker_process_started before worker_exited", got)
	}
	end := evs[len(evs)-1]
	if end.Action != "worker_spawn_failed" || *end.OK || end.Error == nil || end.Error.Code != wire.CodeWorkerExited {
		t.Errorf("end event: got %+v", end)
	}
	a.stillServes(t)
}

func TestConsumer_SpawnWaitModes(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	t.Run("exec replies before the alive window", func(t *testing.T) {
		// A crashing worker still gives ok with wait: exec: the process did start.
		var sp wire.SpawnResult
		a.must(t, "spawn", `{"worker_id":"e1","model_id":"m@crash-after=1s","device":"cpu","wait":"exec"}`, &sp)
		if sp.Wait != "exec" || sp.PID == 0 {
			t.Errorf("got %+v", sp)
		}
		testenv.WaitGone(sp.PID, 10e9)
	})
	t.Run("ready waits for health", func(t *testing.T) {
		narr := a.watch(t, "job.j-ready.narration")
		var sp wire.SpawnResult
		a.must(t, "spawn", `{"job_id":"j-ready","worker_id":"r1","model_id":"m@ready-after=400ms","device":"cpu","wait":"ready","wait_timeout_ms":20000}`, &sp)
		evs := events(t, narr.waitFor(t, "end", hasEnd(t)))
		if got := actions(evs); !slices.Contains(got, "worker_ready") || !slices.Contains(got, "worker_waiting_ready") {
			t.Errorf("actions %v lack worker_waiting_ready and worker_ready", got)
		}
		a.must(t, "delete", `{"worker_id":"r1"}`, nil)
	})
	t.Run("ready times out", func(t *testing.T) {
		r := a.req(t, "spawn", `{"worker_id":"r2","model_id":"m@no-health","device":"cpu","wait":"ready","wait_timeout_ms":300}`)
		wantError(t, r, wire.CodeNotReady, "")
		if !strings.Contains(r.Error.Message, "still running") {
			t.Errorf("message %q does not say the worker is left running", r.Error.Message)
		}
		a.must(t, "delete", `{"worker_id":"r2"}`, nil)
	})
	t.Run("ready sees the worker die", func(t *testing.T) {
		r := a.req(t, "spawn", `{"worker_id":"r3","model_id":"m@crash-after=200ms,no-health","device":"cpu","wait":"ready","wait_timeout_ms":20000}`)
		wantError(t, r, wire.CodeWorkerExited, "")
	})
}

func TestConsumer_FireAndForget(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	result := a.watch(t, "job.j-ff.result")
	if err := a.client.Publish(a.subject("spawn"), []byte(`{"job_id":"j-ff","worker_id":"ff","model_id":"m","device":"cpu","wait":"exec"}`)); err != nil {
		t.Fatal(err)
	}
	var r reply
	json.Unmarshal(result.waitFor(t, "result", result.count(1))[0], &r)
	if !r.OK || r.Kind != "worker.spawn" {
		t.Fatalf("result: got %+v", r)
	}
	// Bad input without a reply subject still ends up on the job's result.
	bad := a.watch(t, "job.j-ff2.result")
	a.client.Publish(a.subject("delete"), []byte(`{"job_id":"j-ff2","worker_id":"a.b"}`))
	json.Unmarshal(bad.waitFor(t, "result", bad.count(1))[0], &r)
	if r.OK || r.Error.Code != wire.CodeBadRequest || r.Error.Field != "worker_id" {
		t.Errorf("bad fire-and-forget result: got %+v", r)
	}
	a.must(t, "delete", `{"worker_id":"ff"}`, nil)
}

func TestConsumer_ResentSpawnStartsNothingNew(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	body := `{"command_id":"retry-1","worker_id":"w","model_id":"m","device":"cpu"}`
	var first, again wire.SpawnResult
	a.must(t, "spawn", body, &first)
	a.must(t, "spawn", body, &again)
	if !again.Existing || again.PID != first.PID || again.Port != first.Port {
		t.Errorf("resend: got %+v, want existing worker pid %d", again, first.PID)
	}
	if got := testenv.Marked(a.hive); len(got) != 1 {
		t.Errorf("processes of the hive: got %v, want one", got)
	}
	// Another command for the same id is a conflict, and so is the same
	// command id asking for something else.
	r := a.req(t, "spawn", `{"command_id":"other","worker_id":"w","model_id":"m","device":"cpu"}`)
	wantError(t, r, wire.CodeConflict, "")
	r = a.req(t, "spawn", `{"command_id":"retry-1","worker_id":"w","model_id":"another-model","device":"cpu"}`)
	wantError(t, r, wire.CodeConflict, "")
	a.must(t, "delete", `{"worker_id":"w"}`, nil)
}

func TestConsumer_SlowSpawnDoesNotHoldUpOthers(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	slow := a.watch(t, "job.j-slow.result")
	a.client.Publish(a.subject("spawn"), []byte(`{"job_id":"j-slow","worker_id":"slow","model_id":"m@ready-after=3s","device":"cpu","wait":"ready"}`))
	// While the slow spawn waits for health, another worker is spawned and deleted.
	a.must(t, "spawn", `{"worker_id":"quick","model_id":"m","device":"cpu","wait":"exec"}`, nil)
	a.must(t, "delete", `{"worker_id":"quick"}`, nil)
	slow.mu.Lock()
	n := len(slow.msgs)
	slow.mu.Unlock()
	if n != 0 {
		t.Errorf("the slow spawn finished before the quick commands: they were not run concurrently")
	}
	slow.waitFor(t, "slow result", slow.count(1))
	a.must(t, "delete", `{"worker_id":"slow"}`, nil)
}

func TestConsumer_BusyBeyondLimit(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.maxInFlight = 1 })
	slow := a.watch(t, "job.j-busy.result")
	a.client.Publish(a.subject("spawn"), []byte(`{"job_id":"j-busy","worker_id":"hog","model_id":"m@no-health","device":"cpu","wait":"ready","wait_timeout_ms":2000}`))
	// Wait until the hog is running, so the one slot is taken.
	if !testenv.WaitMarked(a.hive, 1, 20*time.Second) {
		t.Fatal("the hog worker never started")
	}
	r := a.req(t, "list", "")
	wantError(t, r, wire.CodeBusy, "")
	slow.waitFor(t, "hog result", slow.count(1))
	a.stillServes(t)
	a.must(t, "delete", `{"worker_id":"hog"}`, nil)
}

func TestConsumer_ExitedEventForKillFromOutside(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	var sp wire.SpawnResult
	a.must(t, "spawn", `{"worker_id":"victim","model_id":"m","device":"cpu"}`, &sp)
	if err := syscall.Kill(sp.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ex wire.ExitedEvent
	json.Unmarshal(exited.waitFor(t, "exited", exited.count(1))[0], &ex)
	if ex.Signal != "SIGKILL" || ex.PID != sp.PID || ex.WorkerID != "victim" || ex.RanMS <= 0 {
		t.Errorf("exited event: got %+v", ex)
	}
	r := a.req(t, "get", `{"worker_id":"victim"}`)
	wantError(t, r, wire.CodeNotFound, "")

	// Killed from outside, a worker's children are stopped by the agent.
	a.must(t, "spawn", `{"worker_id":"parent","model_id":"m@fork","device":"cpu","wait":"ready"}`, &sp)
	waitLogLine(t, sp.LogPath, "testworker child pid")
	members := testenv.GroupMembers(sp.PID)
	if len(members) != 2 {
		t.Fatalf("group %d: got %v, want the worker and its child", sp.PID, members)
	}
	syscall.Kill(sp.PID, syscall.SIGKILL)
	json.Unmarshal(exited.waitFor(t, "second exited", exited.count(2))[1], &ex)
	if ex.WorkerID != "parent" || ex.Signal != "SIGKILL" || ex.LeftoversStopped != 1 {
		t.Errorf("exited event: got %+v, want SIGKILL and 1 leftover stopped", ex)
	}
	for _, pid := range members {
		if testenv.Alive(pid) {
			t.Errorf("pid %d of the killed worker's group still running", pid)
		}
	}
}

func TestConsumer_ConcurrentSpawnsOfOneID(t *testing.T) {
	a := startAgent(t, testenv.NATS(t))
	const n = 8
	results := make(chan reply, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			msg, err := a.client.Request(a.subject("spawn"),
				[]byte(fmt.Sprintf(`{"command_id":"c%d","worker_id":"same","model_id":"m","device":"cpu","wait":"exec"}`, i)), 30e9)
			var r reply
			if err == nil {
				json.Unmarshal(msg.Data, &r)
			}
			results <- r
		}(i)
	}
	ok, conflict := 0, 0
	for i := 0; i < n; i++ {
		r := <-results
		switch {
		case r.OK:
			ok++
		case r.Error != nil && r.Error.Code == wire.CodeConflict:
			conflict++
		default:
			t.Errorf("unexpected reply %+v", r)
		}
	}
	if ok != 1 || conflict != n-1 {
		t.Errorf("got %d ok and %d conflict, want 1 and %d", ok, conflict, n-1)
	}
	if got := testenv.Marked(a.hive); len(got) != 1 {
		t.Errorf("processes: got %v, want exactly one worker", got)
	}
	a.must(t, "delete", `{"worker_id":"same"}`, nil)
}
