package gpu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// ErrTimeout is a run of nvidia-smi that did not finish within its bound
// (a wedged driver, or a process that keeps the output open).
var ErrTimeout = errors.New("nvidia-smi did not answer in time")

// run runs the command with args, bounded by timeout: when the bound
// passes, the command's whole process group is killed, and the output
// pipes are closed a moment later even if a process outside the group
// still holds them, so run never waits longer than about timeout.
func run(ctx context.Context, command string, args []string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, command, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ownGroup(cmd)
	// Without WaitDelay, Wait waits for the pipes' EOF, which a grandchild
	// holding stdout would delay for as long as it lives.
	cmd.WaitDelay = 200 * time.Millisecond
	err := cmd.Run()
	name := command + " " + strings.Join(args, " ")
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "", fmt.Errorf("%w: %s: no answer within %s", ErrTimeout, name, timeout)
	case errors.Is(err, exec.ErrWaitDelay):
		// It exited, but something it started still holds the output:
		// what it wrote is complete.
		return stdout.String(), nil
	case err != nil:
		msg := strings.TrimSpace(stderr.String() + " " + stdout.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg != "" {
			return "", fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return stdout.String(), nil
}
