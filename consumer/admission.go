package consumer

import (
	"context"
	"errors"
	"sync"
)

// Why admission refuses a command.
var (
	errStopping = errors.New("stopping")
	errFull     = errors.New("at the in-flight limit")
)

// admission is the one gate every command passes, whichever way it came
// (request/reply, the durable intake, a restart the agent gives itself):
// the in-flight limit, whose slots all share, and the count Close waits
// for. Once closed it admits nothing. Safe for concurrent use.
type admission struct {
	slots   chan struct{}
	mu      sync.Mutex // guards closing and running.Add against close
	closing bool
	running sync.WaitGroup
}

func newAdmission(maxInFlight int) *admission {
	return &admission{slots: make(chan struct{}, maxInFlight)}
}

// try admits a command that holds a slot, without waiting (request/reply:
// a full agent answers busy). The error is errStopping or errFull.
func (a *admission) try() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return errStopping
	}
	select {
	case a.slots <- struct{}{}:
	default:
		return errFull
	}
	a.running.Add(1)
	return nil
}

// wait admits a command that holds a slot, waiting for one (the intake
// queues instead of answering busy); false when ctx ends or admission
// closes first.
func (a *admission) wait(ctx context.Context) bool {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if !a.enter() {
		<-a.slots
		return false
	}
	return true
}

// enter admits a command that holds no slot (intake reads, a delete that
// borrows a spawn's slot, the agent's own restarts); false once closing.
func (a *admission) enter() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return false
	}
	a.running.Add(1)
	return true
}

// leave ends an admitted command, giving its slot back when it held one.
func (a *admission) leave(slot bool) {
	if slot {
		<-a.slots
	}
	a.running.Done()
}

// close stops admitting; done is closed once every admitted command left.
func (a *admission) close() (done <-chan struct{}) {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	ch := make(chan struct{})
	go func() { a.running.Wait(); close(ch) }()
	return ch
}

// inFlight is how many slots are held.
func (a *admission) inFlight() int { return len(a.slots) }
