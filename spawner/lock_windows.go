package spawner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// DefaultLockPath is the start lock every agent of this user takes around
// its check-then-start section: %LOCALAPPDATA%\hive-agent\start.lock.
func DefaultLockPath() string { return filepath.Join(DefaultStateDir(), "start.lock") }

// DefaultStateDir is where the agent keeps its files on Windows,
// %LOCALAPPDATA%\hive-agent (the user's profile, private to the user).
func DefaultStateDir() string {
	dir, err := os.UserCacheDir() // %LOCALAPPDATA% on Windows
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "hive-agent")
}

func prepareLockDir(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("start lock dir: %w", err)
	}
	return nil
}

// lockStart takes the start lock (LockFileEx, exclusive). It polls rather
// than blocking, so that a waiting Start holds no thread and honours ctx.
func lockStart(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open start lock: %w", err)
	}
	return pollLock(ctx, path, f, func() (bool, error) {
		var ol windows.Overlapped
		err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
		return errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING), err
	})
}
