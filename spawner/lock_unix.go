//go:build unix

package spawner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// DefaultLockPath is the start lock every agent of this user takes around
// its check-then-start section, whatever its hive id and log directory:
// /tmp/hive-agent-<uid>/start.lock. It is not under $XDG_RUNTIME_DIR,
// which a login shell sets and a system service of the same user does not,
// so two agents of one user would not agree on it.
func DefaultLockPath() string {
	return filepath.Join("/tmp", "hive-agent-"+strconv.Itoa(os.Geteuid()), "start.lock")
}

// prepareLockDir creates the lock's directory 0700 and refuses one that
// another user could write to: whoever can replace the lock file can make
// two agents start one worker twice.
func prepareLockDir(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("start lock dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("start lock dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("start lock dir %s: not a directory", dir)
	case ok && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("start lock dir %s: owned by uid %d, not by this user", dir, st.Uid)
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
		return fmt.Errorf("start lock dir %s: writable by others (mode %v)", dir, fi.Mode().Perm())
	}
	return nil
}

// lockStart takes the start lock (flock, exclusive). Every agent of the
// user holds it from its scan of the process table until its new worker's
// marker is readable, so that no two agents hand out one port or start one
// worker id of one hive twice. It polls rather than blocking in flock, so
// that a waiting Start holds no thread and honours ctx.
func lockStart(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open start lock: %w", err)
	}
	return pollLock(ctx, path, f, func() (bool, error) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		return errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR), err
	})
}
