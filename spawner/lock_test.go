//go:build unix

package spawner

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/rbee/hive-agent/internal/testenv"
)

// Two agents of one user, here two processes with different hive ids and
// one port range, spawning at the same time: the start lock they share
// keeps every port distinct.
func TestSpawner_TwoAgentsNeverShareAPort(t *testing.T) {
	const n = 40
	a := newHarness(t, 10300, 10399)
	b := newHarness(t, 10300, 10399)
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("p%02d", i))
	}
	helper, out := startHelper(t, b.hive, b.logDir, ContainmentAuto, 10300, 10399, "m", ids)
	t.Cleanup(func() { testenv.Stop(b.hive) })
	var (
		mu    sync.Mutex
		ports = map[int]string{}
		wg    sync.WaitGroup
	)
	claim := func(port int, who string) {
		mu.Lock()
		defer mu.Unlock()
		if other, dup := ports[port]; dup {
			t.Errorf("port %d handed out twice: %s and %s", port, other, who)
		}
		ports[port] = who
	}
	for _, id := range ids {
		wg.Go(func() {
			hd, err := a.Start(t.Context(), a.spec(t, id, "m"))
			if err != nil {
				t.Errorf("hive a: Start %s: %v", id, err)
				return
			}
			claim(hd.Port, "a/"+id)
		})
	}
	wg.Wait()
	res := waitHelper(t, helper, out)
	for _, r := range res {
		if r.status != "ok" {
			t.Errorf("hive b (other process): %s %s\n%s", r.status, r.id, out)
			continue
		}
		claim(r.port, "b/"+r.id)
	}
	if len(res) != n || len(ports) != 2*n {
		t.Errorf("got %d results from hive b and %d distinct ports; want %d and %d", len(res), len(ports), n, 2*n)
	}
	for _, h := range []*harness{a, b} {
		for _, id := range ids {
			if _, err := h.Stop(t.Context(), id, stopGrace, nil); err != nil {
				t.Errorf("Stop %s: %v", id, err)
			}
		}
	}
}

// Two Spawners of the same hive (two agents started by mistake with one
// hive id) starting the same worker ids at once: each id runs once, the
// other Start answers *RunningError.
func TestSpawner_TwoAgentsNeverRunOneIDTwice(t *testing.T) {
	const n = 30
	a := newHarness(t, 10300, 10399)
	b := newHarness(t, 10300, 10399)
	b.Spawner.cfg.HiveID = a.hive
	b.Spawner.cfg.LogDir = a.logDir
	type outcome struct{ started, running int }
	got := make([]outcome, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		for _, h := range []*harness{a, b} {
			wg.Go(func() {
				_, err := h.Start(t.Context(), a.spec(t, fmt.Sprintf("same%02d", i), "m"))
				var running *RunningError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					got[i].started++
				case errors.As(err, &running):
					got[i].running++
				default:
					t.Errorf("Start same%02d: %v", i, err)
				}
			})
		}
	}
	wg.Wait()
	for i, o := range got {
		if o.started != 1 || o.running != 1 {
			t.Errorf("same%02d: started %d times, running error %d times; want 1 and 1", i, o.started, o.running)
		}
	}
	live := map[string]int{}
	for _, pid := range testenv.Marked(a.hive) {
		live[testenv.Environ(pid)[envWorker]]++
	}
	for id, k := range live {
		if k != 1 {
			t.Errorf("%s: %d live processes, want 1", id, k)
		}
	}
	if len(live) != n {
		t.Errorf("%d worker ids running, want %d", len(live), n)
	}
	for i := range n {
		if _, err := a.Stop(t.Context(), fmt.Sprintf("same%02d", i), stopGrace, nil); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
}
