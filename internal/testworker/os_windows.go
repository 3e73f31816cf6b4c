package main

import (
	"os"
	"syscall"
)

// stopSignals are what the worker stops on (or ignores, when asked): Go
// delivers CTRL_BREAK and CTRL_C as os.Interrupt.
var stopSignals = []os.Signal{os.Interrupt}

// detached starts a child in a process group of its own; it stays in the
// worker's job object, which no process leaves.
func detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// pgrp is -1: Windows does not tell a process its group.
func pgrp() int { return -1 }
