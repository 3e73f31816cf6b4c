package spawner

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/windows"
)

// ctrlBreakEnv, set in a helper process's environment, makes it send
// CTRL_BREAK to the process group it names and exit (see init).
// GenerateConsoleCtrlEvent reaches only processes attached to the caller's
// console, and each worker has a console of its own (hidden), so a helper
// attaches to the worker's console and sends it there: the agent's own
// console, and so its output, is never touched. StartEnv removes HIVE_*
// variables, so no worker inherits this one.
const ctrlBreakEnv = "HIVE_AGENT_CTRL_BREAK_GROUP"

func init() {
	if v := os.Getenv(ctrlBreakEnv); v != "" {
		os.Exit(ctrlBreakHelper(v))
	}
}

// ctrlBreakHelper runs in the helper process: exit 0 when the event was sent.
func ctrlBreakHelper(v string) int {
	pid, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ctrl-break helper: bad process group", v)
		return 2
	}
	procFreeConsole.Call()
	if r, _, e := procAttachConsole.Call(uintptr(pid)); r == 0 {
		fmt.Fprintln(os.Stderr, "attach to the console of", pid, ":", e)
		return 3
	}
	procSetConsoleCtrlHn.Call(0, 1) // the helper itself ignores the event
	if err := windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(pid)); err != nil {
		fmt.Fprintln(os.Stderr, "send CTRL_BREAK to group", pid, ":", err)
		return 4
	}
	return 0
}

// sendCtrlBreak sends CTRL_BREAK to the process group led by pid (a worker
// started with CREATE_NEW_PROCESS_GROUP) through a helper: this program
// started again with ctrlBreakEnv set.
func sendCtrlBreak(pid int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("ctrl-break helper: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), ctrlBreakEnv+"="+strconv.Itoa(pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.CREATE_NO_WINDOW}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctrl-break helper: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
