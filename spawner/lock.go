package spawner

import (
	"context"
	"fmt"
	"os"
	"time"
)

// pollLock takes the start lock on f with try, which attempts it once
// without blocking and reports busy when another holder has it. It polls,
// 100 µs doubling to 10 ms, rather than blocking in the system call, so
// that a waiting Start holds no thread and honours ctx. f is closed on
// failure; on success closing it releases the lock.
func pollLock(ctx context.Context, path string, f *os.File, try func() (busy bool, err error)) (unlock func(), err error) {
	wait := 100 * time.Microsecond
	for {
		busy, err := try()
		switch {
		case err == nil:
			return func() { f.Close() }, nil
		case !busy:
			f.Close()
			return nil, fmt.Errorf("take start lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("take start lock %s: %w", path, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Millisecond)
	}
}
