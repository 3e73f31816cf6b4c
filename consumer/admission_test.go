package consumer

import (
	"context"
	"errors"
	"testing"
)

// One gate for every path: slots shared by try (request/reply) and wait
// (intake), commands without a slot counted too, and nothing admitted
// once closing, whose done waits for every admitted command.
func TestAdmission_OneLimitAndOneWait(t *testing.T) {
	a := newAdmission(2)
	if err := a.try(); err != nil {
		t.Fatalf("first try: %v", err)
	}
	if !a.wait(t.Context()) {
		t.Fatal("wait with a slot free: refused")
	}
	if err := a.try(); !errors.Is(err, errFull) {
		t.Fatalf("try at the limit: got %v, want errFull", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if a.wait(ctx) {
		t.Fatal("wait at the limit with its context ended: admitted")
	}
	if got := a.inFlight(); got != 2 {
		t.Fatalf("in flight %d, want 2", got)
	}
	if !a.enter() {
		t.Fatal("enter (no slot) at the limit: refused")
	}
	done := a.close()
	if err := a.try(); !errors.Is(err, errStopping) {
		t.Fatalf("try once closing: got %v, want errStopping", err)
	}
	if a.enter() {
		t.Fatal("enter once closing: admitted")
	}
	a.leave(true)
	a.leave(true)
	select {
	case <-done:
		t.Fatal("done before the command without a slot left")
	default:
	}
	a.leave(false)
	<-done
	if got := a.inFlight(); got != 0 {
		t.Errorf("in flight %d after every command left, want 0", got)
	}
}
