package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The repository's systemd unit has what worker management needs, and
// systemd itself accepts every line of it (an unknown or misspelt key is
// only a warning to systemd, so any output fails the test).
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "systemd", "hive-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"KillMode=process", "Delegate=yes", "LogsDirectory=hive-agent", "StateDirectory=hive-agent",
		"Environment=HIVE_LOG_DIR=/var/log/hive-agent", "Environment=HIVE_JETSTREAM_DIR=/var/lib/hive-agent/jetstream",
		"ExecStart=/usr/local/bin/hive-agent\n"} {
		if !strings.Contains(string(unit), "\n"+line) {
			t.Errorf("unit lacks the line %q", line)
		}
	}
	for _, forbidden := range []string{"PrivateTmp=yes", "PrivateDevices=yes", "ProtectControlGroups=yes"} {
		if strings.Contains(string(unit), "\n"+forbidden) {
			t.Errorf("unit has %q, which breaks worker management", forbidden)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd); the unit's lines were checked, systemd's verify was not run")
	}
	// verify wants ExecStart's binary to exist: point it at the one built
	// for the tests, the only change to the file.
	path := filepath.Join(t.TempDir(), "hive-agent.service")
	text := strings.Replace(string(unit), "ExecStart=/usr/local/bin/hive-agent", "ExecStart="+agentBin, 1)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
