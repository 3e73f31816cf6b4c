package main

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A value comes from the flag, else its environment variable, else the
// configuration file, else the default.
func TestConfigFile_FlagsAndEnvironmentWin(t *testing.T) {
	file := writeFile(t, "agent.yaml", "hive-id: from-file\nqueen-url: http://file:1\nport-range: 9300-9310\n"+
		"max-in-flight: 7\njetstream-create: false\nworker-dir: [/w1, /w2]\n")
	c, err := parseRun(t, []string{"--config", file, "--hive-id", "from-flag"},
		map[string]string{"HIVE_QUEEN_URL": "http://env:2", "HIVE_LOG_DIR": "/l"})
	if err != nil {
		t.Fatal(err)
	}
	if c.HiveID != "from-flag" || c.QueenURL != "http://env:2" || c.PortMin != 9300 || c.PortMax != 9310 ||
		c.MaxInFlight != 7 || c.JetStreamCreate || !slices.Equal(c.WorkerDirs, []string{"/w1", "/w2"}) || c.SpawnWait != "alive" {
		t.Errorf("got %+v", c)
	}
	// HIVE_CONFIG names the file the same way; an environment variable
	// set to the empty string still wins over the file.
	c, err = parseRun(t, nil, map[string]string{"HIVE_CONFIG": file, "HIVE_LOG_DIR": "/l", "HIVE_PORT_RANGE": "9400-9401"})
	if err != nil {
		t.Fatal(err)
	}
	if c.HiveID != "from-file" || c.QueenURL != "http://file:1" || c.PortMin != 9400 {
		t.Errorf("HIVE_CONFIG: got %+v", c)
	}
}

// The example file of the repository is one the agent takes.
func TestConfigFile_Example(t *testing.T) {
	example := filepath.Join(repoRoot(t), "deploy", "hive-agent.yaml")
	var c cli
	p, err := newParser(&c, nil, nil, func(int) { t.Fatal("parser exited") })
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := p.Parse([]string{"--config", example, "--log-dir", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if kctx.Command() != "run" || c.Run.HiveID != "gpu-node-07" || c.Run.WorkerDir != "/opt/rbee/bin" ||
		c.Run.NATS.URL != "nats://nats-1.internal:4222,nats://nats-2.internal:4222" || c.Run.ReadyTimeout != "10m" {
		t.Errorf("example: got %+v", c.Run)
	}
}

// Every problem of a file is reported at once with file, line and key,
// and the agent exits 2 before it starts anything.
func TestConfigFile_BadFilesExit2(t *testing.T) {
	bad := writeFile(t, "bad.yaml", "hive-id: h1\nhive-idd: x\nlog-levle: debug\njetstream-create: maybe\n"+
		"spawn-wait: soon\nnats-url: {a: 1}\nport-range: [1, 2]\nfavourite-colour: blue\n")
	notYAML := writeFile(t, "broken.yaml", "hive-id: h1\nqueen-url: [http://q\nport-range: 9100-9199\n")
	list := writeFile(t, "list.yaml", "- hive-id\n")
	for _, c := range []struct {
		file string
		want string
	}{
		{bad, "hive-agent: configuration file:\n" +
			"  " + bad + ":2: hive-idd: unknown key; did you mean \"hive-id\"?\n" +
			"  " + bad + ":3: log-levle: unknown key; did you mean \"log-level\"?\n" +
			"  " + bad + ":4: jetstream-create: want true or false, got \"maybe\"\n" +
			"  " + bad + ":5: spawn-wait: \"soon\": want one of exec, alive, ready\n" +
			"  " + bad + ":6: nats-url: want a text value, got a mapping\n" +
			"  " + bad + ":7: port-range: want a single value, got a list\n" +
			"  " + bad + ":8: favourite-colour: unknown key; keys are the agent's long flag names (hive-agent --help)\n" +
			"Run 'hive-agent --help' for usage.\n"},
		{notYAML, "hive-agent: configuration file:\n  " + notYAML + ":3: not YAML: ',' or ']' must be specified\n"},
		{list, "hive-agent: configuration file:\n  " + list + ":1: want one mapping of flag names to values (hive-id: h1)\n"},
		{"/nonexistent/agent.yaml", "hive-agent: --config (HIVE_CONFIG): open /nonexistent/agent.yaml: no such file or directory\n"},
	} {
		cmd := exec.Command(agentBin, "--config", c.file, "--log-dir", t.TempDir(), "--jetstream", "off", "--nats-listen", "127.0.0.1:0")
		cmd.Env = cliEnv()
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage || !strings.HasPrefix(string(out), c.want) {
			t.Errorf("%s: %v, output:\n%s\nwant exit 2 and output starting:\n%s", filepath.Base(c.file), err, out, c.want)
		}
	}
	// A client command does not read the agent's file.
	r := runCLI(t, "nats://127.0.0.1:1", "hives")
	cmd := cliCommand(t, "nats://127.0.0.1:1", "hives")
	cmd.Env = append(cmd.Env, "HIVE_CONFIG="+bad)
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "configuration file") || cmd.ProcessState.ExitCode() != r.code {
		t.Errorf("hives with HIVE_CONFIG=%s: exit %d, output:\n%s", bad, cmd.ProcessState.ExitCode(), out)
	}
}
