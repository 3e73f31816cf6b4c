//go:build unix

package consumer_test

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
)

// A spawn that answered worker_exited leaves no restarting worker behind:
// the exited event announces no restart, the narration says why, and a
// delete finds nothing to stop or cancel.
func TestConsumer_NoRestartAfterAFailedSpawn(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.restartBackoff = 50 * time.Millisecond })
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	narr := a.watch(t, "job.j-dies.narration")
	r := a.req(t, "spawn", `{"job_id":"j-dies","worker_id":"dies","model_id":"m@crash-after=50ms","device":"cpu","wait":"alive","restart":"on-failure","max_restarts":2}`)
	wantError(t, r, commands.CodeWorkerExited, "")
	var ev consumer.ExitedEvent
	if err := json.Unmarshal(exited.waitFor(t, "exit", exited.count(1))[0], &ev); err != nil || ev.Restart != 0 || ev.RestartInMS != 0 {
		t.Errorf("exited event %+v (%v): want no restart", ev, err)
	}
	narr.waitFor(t, "narration of the exit", func(msgs [][]byte) bool {
		return strings.Contains(joinMsgs(msgs), "Not restarting it: it exited before its spawn's wait ended")
	})
	wantError(t, a.req(t, "delete", `{"worker_id":"dies"}`), commands.CodeNotFound, "")
	a.stillServes(t)
}

// A delete that only cancels a pending restart answers without a pid
// (there is no process), as documented.
func TestConsumer_DeleteDuringBackoffHasNoPID(t *testing.T) {
	a := startAgent(t, testenv.NATS(t), func(o *agentOpts) { o.restartBackoff = 50 * time.Second })
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	narr := a.watch(t, "job.j-del.narration")
	a.must(t, "spawn", `{"worker_id":"w","model_id":"m@crash","device":"cpu","wait":"exec","restart":"on-failure"}`, nil)
	exited.waitFor(t, "exit", exited.count(1))
	r := a.must(t, "delete", `{"job_id":"j-del","worker_id":"w"}`, nil)
	end := events(t, narr.waitFor(t, "the delete's end", narr.count(3)))
	if last := end[len(end)-1]; last.Action != "worker_deleted" || strings.Contains(last.Human, "pid 0") {
		t.Errorf("end event %+v: want worker_deleted naming no pid 0", last)
	}
	var res map[string]any
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatal(err)
	}
	if _, has := res["pid"]; has || res["restart_cancelled"] != true {
		t.Errorf("delete during backoff: %s, want restart_cancelled and no pid", r.Result)
	}
}

// An agent closed while a worker waits for its restart leaves the restart
// to the next agent of the hive, which starts the worker again once the
// backoff ends (same id, port and model, the restart counted) and says so;
// a delete sent to the next agent cancels such a restart.
func TestConsumer_PendingRestartSurvivesAClosedAgent(t *testing.T) {
	s := testenv.NATS(t)
	a := startAgent(t, s, func(o *agentOpts) { o.restartBackoff = 300 * time.Millisecond })
	started := a.watch(t, "hive."+a.hive+".events.worker.started")
	exited := a.watch(t, "hive."+a.hive+".events.worker.exited")
	resumed := a.watch(t, "hive."+a.hive+".events.worker.restart_resumed")
	// A port of its own, not the range's lowest free one, which agents of
	// other tests may take while the worker waits for its restart.
	var sp commands.SpawnResult
	a.must(t, "spawn", `{"worker_id":"w","model_id":"m","device":"cpu","restart":"on-failure","max_restarts":2,"port":`+strconv.Itoa(ownPort(t))+`}`, &sp)
	// The agent is stopping: the worker's exit comes after, its backoff
	// with nobody left to honour it in this agent.
	a.sp.Close()
	syscall.Kill(sp.PID, syscall.SIGKILL)
	var ex consumer.ExitedEvent
	json.Unmarshal(exited.waitFor(t, "exit", exited.count(1))[0], &ex)
	if ex.Restart != 1 || ex.RestartInMS != 300 {
		t.Fatalf("exited event %+v: want restart 1 in 300 ms", ex)
	}
	a.close()

	b := startAgent(t, s, func(o *agentOpts) { o.hive, o.logDir, o.restartBackoff = a.hive, a.logDir, 50*time.Second })
	if _, err := b.sp.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	var res consumer.PendingRestartEvent
	json.Unmarshal(resumed.waitFor(t, "restart_resumed", resumed.count(1))[0], &res)
	if res.WorkerID != "w" || res.Restart != 1 || res.Port != sp.Port {
		t.Errorf("restart_resumed %+v: want restart 1 of w on port %d", res, sp.Port)
	}
	var st consumer.StartedEvent
	json.Unmarshal(started.waitFor(t, "the restart", started.count(2))[1], &st)
	if st.WorkerID != "w" || st.Restart != 1 || st.Port != sp.Port || st.ModelID != "m" {
		t.Errorf("started event %+v: want w restarted (restart 1) on port %d", st, sp.Port)
	}

	// Now b backs off for 50 s; closed, it leaves the restart to c, whose
	// delete cancels it.
	b.sp.Close()
	syscall.Kill(st.PID, syscall.SIGKILL)
	json.Unmarshal(exited.waitFor(t, "second exit", exited.count(2))[1], &ex)
	if ex.Restart != 2 {
		t.Fatalf("exited event %+v: want restart 2", ex)
	}
	b.close()
	c := startAgent(t, s, func(o *agentOpts) { o.hive, o.logDir = a.hive, a.logDir })
	r := c.must(t, "delete", `{"worker_id":"w"}`, nil)
	var del map[string]any
	json.Unmarshal(r.Result, &del)
	if _, has := del["pid"]; has || del["restart_cancelled"] != true {
		t.Errorf("delete: %s, want restart_cancelled and no pid", r.Result)
	}
	if ws, _ := c.sp.Adopt(t.Context()); len(ws) != 0 || len(resumed.snapshot()) != 1 {
		t.Errorf("after the delete Adopt took on %v, restart_resumed events %d; want none and 1", ws, len(resumed.snapshot()))
	}
	c.stillServes(t)
}

// ownPort is a port free now, outside the agents' ranges.
func ownPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
