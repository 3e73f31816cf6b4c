//go:build unix && !linux

package spawner

import (
	"syscall"
	"time"
)

func openPidfd(int) (int, error) { return -1, syscall.ENOSYS }

func pidfdExited(int, time.Duration) bool { return false }

func pidfdSignal(int, syscall.Signal) error { return syscall.ENOSYS }
