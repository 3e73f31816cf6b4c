package spawner

import (
	"context"
	"time"
)

// waitGone waits until nothing of the worker is left (gone: its group and
// cgroup, or its job on Windows) or timeout passes, polling with a growing
// interval that starts at 1 ms; leaderExited, when not nil, wakes it as
// soon as the worker's main process exits.
func (m *members) waitGone(ctx context.Context, timeout time.Duration, leaderExited func(time.Duration) bool) bool {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		if m.gone(ctx) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		wait := min(interval, left)
		if leaderExited == nil || leaderExited(0) {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return false
			}
		} else {
			leaderExited(min(left, 250*time.Millisecond))
		}
		interval = min(interval*2, 50*time.Millisecond)
	}
}
