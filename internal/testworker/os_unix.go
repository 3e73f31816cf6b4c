//go:build unix

package main

import (
	"os"
	"syscall"
)

// stopSignals are what the worker stops on (or ignores, when asked).
var stopSignals = []os.Signal{syscall.SIGTERM}

// detached makes a child leave the worker's process group and session.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

func pgrp() int { return syscall.Getpgrp() }
