package consumer

import (
	"testing"

	"github.com/rbee/hive-agent/commands"
)

// Which intake command may start beside the running commands of its
// worker: reads pass a spawn that only waits for its worker, a delete
// passes it too (and ends its wait), a restart waits for it like a spawn.
func TestIntake_LaneOrder(t *testing.T) {
	waitingSpawn := &item{kind: commands.KindSpawn, running: true, waiting: true}
	startingSpawn := &item{kind: commands.KindSpawn, running: true}
	for _, c := range []struct {
		head    string
		running *item
		want    bool
	}{
		{commands.KindList, waitingSpawn, true},
		{commands.KindGet, waitingSpawn, true},
		{commands.KindLogs, waitingSpawn, true},
		{commands.KindDelete, waitingSpawn, true},
		{commands.KindRestart, waitingSpawn, false},
		{commands.KindSpawn, waitingSpawn, false},
		{commands.KindGet, startingSpawn, false},
		{commands.KindRestart, startingSpawn, false},
	} {
		l := &lane{running: []*item{c.running}}
		if got := mayStart(l, &item{kind: c.head}); got != c.want {
			t.Errorf("%s beside a running spawn (waiting %v): may start %v, want %v", c.head, c.running.waiting, got, c.want)
		}
	}
	if isRead(commands.KindRestart) {
		t.Error("a restart counts as a read: it would take a read slot though it starts a worker")
	}
}
