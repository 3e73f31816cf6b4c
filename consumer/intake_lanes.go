package consumer

import (
	"fmt"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/spawner"
	"github.com/rbee/hive-agent/wire"
)

// lane holds one worker's intake commands. They start in stream order,
// each once the ones before it finished, with two exceptions that keep
// the order's meaning: reads (get, logs) run side by side, and once a
// spawn's worker process runs, the spawn's wait for it (alive, ready) no
// longer holds the worker's reads and a delete back; such a delete ends
// that wait.
type lane struct {
	queue   []*item // in stream order, not started
	running []*item
}

// isRead reports whether kind only reads (or is answered at once): it has
// its own admission and never waits for a spawn or delete's slot. A
// restart stops and starts a worker: it is no read.
func isRead(kind string) bool {
	return kind != wire.KindSpawn && kind != wire.KindDelete && kind != wire.KindRestart
}

// mayStart reports whether head may start while l's running commands run.
func mayStart(l *lane, head *item) bool {
	for _, r := range l.running {
		passable := r.kind == wire.KindSpawn && r.waiting
		switch {
		case isRead(head.kind) && (passable || isRead(r.kind)):
		case head.kind == wire.KindDelete && passable:
		default:
			return false
		}
	}
	return true
}

// pump starts the commands at the head of a worker's lane that may start,
// unless an earlier unacknowledged command of that worker is still to
// come. i.mu held.
func (i *intake) pump(key string) {
	l := i.lanes[key]
	if l == nil {
		return
	}
	for len(l.queue) > 0 && i.ctx.Err() == nil { // closing: Close gives back what is queued
		head := l.queue[0]
		for seq, k := range i.orphans {
			if k == key && seq < head.seq {
				return
			}
		}
		if !mayStart(l, head) {
			return
		}
		if head.kind == wire.KindDelete {
			for _, r := range l.running {
				if r.kind == wire.KindSpawn {
					// It takes no slot of its own: it ends the wait that
					// holds one, which may be the last one free.
					r.deletedBy, head.borrows = head.ids.jobID, true
				}
			}
		}
		l.queue = l.queue[1:]
		l.running = append(l.running, head)
		head.running = true
		go i.run(head)
	}
	if len(l.queue) == 0 && len(l.running) == 0 {
		delete(i.lanes, key)
	}
}

// done forgets it and starts what may start next in its worker's lane.
func (i *intake) done(it *item) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.held, it.seq)
	if it.key == "" {
		return
	}
	if l := i.lanes[it.key]; l != nil {
		for k, r := range l.running {
			if r == it {
				l.running = append(l.running[:k], l.running[k+1:]...)
				break
			}
		}
	}
	i.pump(it.key)
}

// workerStarted marks the running spawn that started w as waiting for it,
// letting the worker's reads and a delete pass it.
func (i *intake) workerStarted(w spawner.Worker) {
	i.mu.Lock()
	defer i.mu.Unlock()
	l := i.lanes[w.WorkerID]
	if l == nil {
		return
	}
	for _, r := range l.running {
		if r.kind == wire.KindSpawn && r.ids.commandID == w.CommandID {
			r.waiting = true
		}
	}
	i.pump(w.WorkerID)
}

// acquire takes an admission slot: reads their own, so that they never
// wait behind slow spawns; spawns and deletes an intake slot and one of
// the consumer's limit, except a delete that ends a spawn's wait (it uses
// that spawn's). It waits for them; false when the consumer closes first.
func (i *intake) acquire(it *item) bool {
	if it.borrows {
		return i.c.adm.enter()
	}
	if isRead(it.kind) {
		select {
		case i.reads <- struct{}{}:
		case <-i.ctx.Done():
			return false
		}
		if !i.c.adm.enter() {
			<-i.reads
			return false
		}
		return true
	}
	select {
	case i.slots <- struct{}{}:
	case <-i.ctx.Done():
		return false
	}
	if !i.c.adm.wait(i.ctx) {
		<-i.slots
		return false
	}
	return true
}

func (i *intake) release(it *item) {
	switch {
	case it.borrows:
		i.c.adm.leave(false)
	case isRead(it.kind):
		<-i.reads
		i.c.adm.leave(false)
	default:
		i.c.adm.leave(true)
		<-i.slots
	}
}

// after is it's outcome hook: a spawn whose wait a delete ended says so.
func (i *intake) after(it *item) func(any, error) (any, error) {
	return func(result any, err error) (any, error) {
		i.mu.Lock()
		by := it.deletedBy
		i.mu.Unlock()
		if by == "" || err == nil {
			return result, err
		}
		e := *commands.ToError(err)
		if e.Code == wire.CodeWorkerExited {
			e.Message = fmt.Sprintf("worker %s was deleted by job %s while this spawn waited for it: %s", it.key, by, e.Message)
		}
		return result, &e
	}
}
