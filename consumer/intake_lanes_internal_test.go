package consumer

import (
	"testing"

	"github.com/rbee/hive-agent/wire"
)

// Which intake command may start beside the running commands of its
// worker: reads pass a spawn that only waits for its worker, a delete
// passes it too (and ends its wait), a restart waits for it like a spawn.
func TestIntake_LaneOrder(t *testing.T) {
	waitingSpawn := &item{kind: wire.KindSpawn, running: true, waiting: true}
	startingSpawn := &item{kind: wire.KindSpawn, running: true}
	for _, c := range []struct {
		head    string
		running *item
		want    bool
	}{
		{wire.KindList, waitingSpawn, true},
		{wire.KindGet, waitingSpawn, true},
		{wire.KindLogs, waitingSpawn, true},
		{wire.KindDelete, waitingSpawn, true},
		{wire.KindRestart, waitingSpawn, false},
		{wire.KindSpawn, waitingSpawn, false},
		{wire.KindGet, startingSpawn, false},
		{wire.KindRestart, startingSpawn, false},
	} {
		l := &lane{running: []*item{c.running}}
		if got := mayStart(l, &item{kind: c.head}); got != c.want {
			t.Errorf("%s beside a running spawn (waiting %v): may start %v, want %v", c.head, c.running.waiting, got, c.want)
		}
	}
	if isRead(wire.KindRestart) {
		t.Error("a restart counts as a read: it would take a read slot though it starts a worker")
	}
}
