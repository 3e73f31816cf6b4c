package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// An agent whose log or JetStream directory cannot be created exits 2 at
// start naming both, before it connects anywhere; it used to start, look
// healthy and fail its first spawn ("log dir: mkdir ...").
func TestAgent_UnwritableDirectoriesExit2(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "a-file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(blocker, "logs")
	jsDir := filepath.Join(blocker, "jetstream")
	cmd := exec.Command(agentBin, "--hive-id", "h", "--log-dir", logDir, "--jetstream-dir", jsDir, "--nats-listen", "127.0.0.1:0")
	cmd.Env = cliEnv()
	out, err := cmd.CombinedOutput()
	want := "hive-agent: configuration:\n" +
		"  --log-dir (HIVE_LOG_DIR) " + logDir + ": cannot be created or written: mkdir " + blocker + ": not a directory\n" +
		"  --jetstream-dir (HIVE_JETSTREAM_DIR) " + jsDir + ": cannot be created or written: mkdir " + blocker + ": not a directory\n"
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage || string(out) != want {
		t.Errorf("got %v, output:\n%s\nwant exit 2 and:\n%s", err, out, want)
	}
}

// A directory that exists but refuses new files (a read-only one) is
// named the same way. Root writes anywhere, so this needs another user.
func TestAgent_ReadOnlyLogDirExits2(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: a read-only mode does not stop root (the not-a-directory case above runs for root)")
	}
	logDir := t.TempDir()
	if err := os.Chmod(logDir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(logDir, 0o700) })
	cmd := exec.Command(agentBin, "--hive-id", "h", "--log-dir", logDir, "--jetstream", "off", "--nats-listen", "127.0.0.1:0")
	cmd.Env = cliEnv()
	out, err := cmd.CombinedOutput()
	want := "hive-agent: configuration:\n  --log-dir (HIVE_LOG_DIR) " + logDir + ": cannot be created or written: create a file in it: permission denied\n"
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage || string(out) != want {
		t.Errorf("got %v, output:\n%s\nwant exit 2 and:\n%s", err, out, want)
	}
}
