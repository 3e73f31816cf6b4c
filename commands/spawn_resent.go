package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// resentPoll is how often a resent spawn checks that the worker it waits
// for still runs.
const resentPoll = 100 * time.Millisecond

// resent answers a spawn sent again (a redelivery, a retried request)
// whose worker this same command started: nothing new is started, and it
// waits for the same condition as the first (alive, ready; bounded by the
// same timeout, counted from now) before answering existing with that
// wait, so that it never says more than it knows.
func (c *Spawn) resent(ctx context.Context, d Deps, typ catalog.Type, w spawner.Worker, wait string) (any, error) {
	n := d.Narrator
	what := "nothing waited for"
	if wait != wire.WaitExec {
		what = "waiting for it as the command asks (wait " + wait + ")"
	}
	n.Narrate("worker_already_running", wire.LevelInfo,
		fmt.Sprintf("Worker %s is already running as pid %d, started by this same command %s; nothing new was started, %s (the first command's outcome goes to job.%s.result).",
			w.WorkerID, w.PID, c.CommandID, what, w.JobID), Fields{WorkerID: w.WorkerID, PID: w.PID})
	if wait == wire.WaitExec {
		return spawnResultOf(w, wire.WaitExec, true), nil
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go c.watchGone(wctx, cancel, d, w)
	h := &spawner.Handle{Worker: w} // never Done: watchGone tells its exit
	var err error
	switch wait {
	case wire.WaitAlive:
		err = h.WaitAlive(wctx, time.Until(w.StartedAt().Add(d.Defaults.AliveWindow)))
		if err == nil {
			n.Narrate("worker_alive", wire.LevelInfo,
				fmt.Sprintf("Worker %s stayed up for %s.", w.WorkerID, d.Defaults.AliveWindow), Fields{WorkerID: w.WorkerID, PID: w.PID})
		}
	case wire.WaitReady:
		err = c.waitReady(wctx, d, typ, h)
	}
	if gone := context.Cause(wctx); err != nil && errors.Is(gone, spawner.ErrWorkerExited) {
		return nil, gone
	}
	if err != nil {
		return nil, err
	}
	return spawnResultOf(w, wait, true), nil
}

// watchGone cancels ctx with an error wrapping spawner.ErrWorkerExited
// once worker w (that pid) no longer runs.
func (c *Spawn) watchGone(ctx context.Context, cancel context.CancelCauseFunc, d Deps, w spawner.Worker) {
	t := time.NewTicker(resentPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := d.Spawner.Find(ctx, w.WorkerID)
		if errors.Is(err, spawner.ErrWorkerNotFound) || (err == nil && now.PID != w.PID) {
			cancel(fmt.Errorf("%w: worker %s (pid %d) exited while this resent spawn waited for it", spawner.ErrWorkerExited, w.WorkerID, w.PID))
			return
		}
	}
}
