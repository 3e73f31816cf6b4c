//go:build unix && !linux

package spawner

import "syscall"

func isCgroup2(string) bool { return false }

func startInCgroup(*syscall.SysProcAttr, int) {}
