//go:build unix

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every credential, key and certificate flag takes only a regular file of
// at most 1 MiB: /dev/zero, a FIFO, a directory or an oversized file ends
// the agent at once with exit 2, naming the flag and the path, before it
// connects anywhere (seen before: /dev/zero grew the agent by gigabytes,
// a FIFO blocked its start with no word).
func TestAgent_SecretFilesMustBeSmallRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 1<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []struct{ name, path, why string }{
		{"dev zero", "/dev/zero", "/dev/zero: not a regular file (a character device); want a file holding the credential"},
		{"fifo", fifo, fifo + ": not a regular file (a FIFO); want a file holding the credential"},
		{"directory", dir, dir + ": not a regular file (a directory); want a file holding the credential"},
		{"oversized", big, big + ": larger than 1048576 bytes (1 MiB); not a credential file"},
	}
	flags := []struct {
		flag, env string
		with      []string // what the flag needs beside it
	}{
		{"nats-token-file", "NATS_TOKEN_FILE", nil},
		{"nats-password-file", "NATS_PASSWORD_FILE", []string{"--nats-user", "u"}},
		{"nats-nkey-file", "NATS_NKEY_FILE", nil},
		{"nats-creds", "NATS_CREDS", nil},
		{"nats-ca", "NATS_CA", nil},
		{"nats-cert", "NATS_CERT", []string{"--nats-key", other}},
		{"nats-key", "NATS_KEY", []string{"--nats-cert", other}},
	}
	for _, f := range flags {
		for _, b := range bad {
			t.Run(f.flag+" "+b.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				args := append([]string{"--hive-id", "secrets", "--log-dir", t.TempDir(),
					"--nats-url", "nats://127.0.0.1:1", "--" + f.flag, b.path}, f.with...)
				cmd := exec.CommandContext(ctx, agentBin, args...)
				out, err := cmd.CombinedOutput()
				if ctx.Err() != nil {
					t.Fatalf("the agent was still running after 30 s (blocked on %s?); output:\n%s", b.path, out)
				}
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
					t.Errorf("exit: got %v, want %d", err, exitUsage)
				}
				want := "hive-agent: configuration:\n  --" + f.flag + " (" + f.env + "): " + b.why + "\n"
				if string(out) != want {
					t.Errorf("output:\n got %q\nwant %q", out, want)
				}
			})
		}
	}
}

// The same files are refused by the client commands, which share the flags.
func TestClient_SecretFileMustBeRegular(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, agentBin, "ls", "-s", "nats://127.0.0.1:1", "--nats-token-file", "/dev/zero").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("still running after 30 s; output:\n%s", out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(out), "--nats-token-file (NATS_TOKEN_FILE): /dev/zero: not a regular file") {
		t.Errorf("got %v, output %q; want exit %d naming the flag and /dev/zero", err, out, exitUsage)
	}
}
