package consumer_test

import (
	"encoding/json"
	"strings"
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
	a.must(t, "spawn", `{"worker_id":"w","model_id":"m@crash","device":"cpu","wait":"exec","restart":"on-failure"}`, nil)
	exited.waitFor(t, "exit", exited.count(1))
	r := a.must(t, "delete", `{"worker_id":"w"}`, nil)
	var res map[string]any
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatal(err)
	}
	if _, has := res["pid"]; has || res["restart_cancelled"] != true {
		t.Errorf("delete during backoff: %s, want restart_cancelled and no pid", r.Result)
	}
}
