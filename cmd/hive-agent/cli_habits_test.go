package main

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rbee/hive-agent/internal/testenv"
)

// The agent's ready line names a client command that works as written:
// with -s when the agent's server is not the client's default, also with
// --nats-url; and -s takes host:port without a scheme, as the nats CLI does.
func TestCLI_ReadyLineWorksAsWritten(t *testing.T) {
	hive := newHive(t)
	port := strconv.Itoa(freePort(t))
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-listen", "127.0.0.1:"+port, "--jetstream", "off")
	want := "ready; try: hive-agent ls --hive " + hive + " -s nats://127.0.0.1:" + port +
		" (or: nats -s nats://127.0.0.1:" + port + " req hive." + hive + ".worker.list '')"
	a.waitLog(t, want)
	r := runCLI(t, "", "ls", "--hive", hive, "-s", "nats://127.0.0.1:"+port)
	wantCLI(t, r, exitOK)
	if !strings.HasPrefix(r.stdout, "HIVE ") {
		t.Errorf("ls as the ready line says: %s", r)
	}
	wantCLI(t, runCLI(t, "", "ls", "--hive", hive, "-s", "127.0.0.1:"+port), exitOK)
	wantCLI(t, runCLI(t, "", "ls", "--hive", hive, "-s", "localhost:"+port), exitOK)
	// Without -s the client's default (127.0.0.1:4222) is another server:
	// that is why the line must name it.
	if port != "4222" {
		if r := runCLI(t, "", "ls", "--hive", hive); r.code == exitOK {
			t.Errorf("ls without -s reached the agent on port %s: %s", port, r)
		}
	}

	// Joining a server: a ready line too, naming it.
	s := testenv.NATS(t)
	hive2 := newHive(t)
	b := startBinary(t, t.TempDir(), "--hive-id", hive2, "--nats-url", s.ClientURL())
	b.waitLog(t, "ready; try: hive-agent ls --hive "+hive2+" -s "+s.ClientURL())
}

// The fleet views print an empty table (exit 0) when no agent runs, and
// say so without sending you back to `hive-agent hives`; a named hive
// nobody serves stays exit 3.
func TestCLI_EmptyFleet(t *testing.T) {
	s := testenv.NATS(t)
	for _, c := range []struct {
		args   []string
		header string
	}{
		{[]string{"hives", "--timeout", "2s"}, "HIVE  VERSION  HOST  DEVICES  WORKERS  IN FLIGHT  UPTIME\n"},
		{[]string{"ls", "--all", "--timeout", "2s"}, "HIVE  WORKER  STATE  RESTARTS  TYPE  PID  PORT  DEVICE  MODEL  UPTIME  MEMORY  GPU MEMORY\n"},
		{[]string{"ls", "--timeout", "2s"}, "HIVE  WORKER  STATE  RESTARTS  TYPE  PID  PORT  DEVICE  MODEL  UPTIME  MEMORY  GPU MEMORY\n"},
	} {
		r := runCLI(t, s.ClientURL(), c.args...)
		wantCLI(t, r, exitOK, "no hive-agent answered on this NATS system")
		if r.stdout != c.header || strings.Contains(r.stderr, "hive-agent hives") {
			t.Errorf("want only the header %q on stdout and no `hive-agent hives` hint: %s", c.header, r)
		}
	}
	r := runCLI(t, s.ClientURL(), "hives", "--json")
	if r.code != exitOK || r.stdout != "{\"hives\":[]}\n" {
		t.Errorf("hives --json: %s", r)
	}
	wantCLI(t, runCLI(t, s.ClientURL(), "ls", "--hive", "nobody"), exitNoAgent, "error: hive nobody: no agent answered")
}

// help and version are commands too; each command's help describes that
// command only, and shows no made-up defaults.
func TestCLI_HelpAndVersionCommands(t *testing.T) {
	version := runCLI(t, "", "--version")
	wantCLI(t, version, exitOK)
	r := runCLI(t, "", "version")
	wantCLI(t, r, exitOK)
	if r.stdout != version.stdout || !strings.HasPrefix(r.stdout, "hive-agent ") {
		t.Errorf("version: %q, --version: %q", r.stdout, version.stdout)
	}
	root := runCLI(t, "", "--help")
	if r := runCLI(t, "", "help"); r.code != exitOK || r.stdout != root.stdout {
		t.Errorf("help differs from --help: %s", r)
	}
	for _, cmd := range [][]string{{"spawn"}, {"ls"}, {"hives"}, {"logs"}, {"job"}, {"catalog", "check"}} {
		want := runCLI(t, "", append(cmd, "--help")...)
		r := runCLI(t, "", append([]string{"help"}, cmd...)...)
		if r.code != exitOK || r.stdout != want.stdout || !strings.Contains(r.stdout, "Usage: hive-agent "+strings.Join(cmd, " ")) {
			t.Errorf("help %s: %s", cmd, r)
		}
		if cmd[0] != "spawn" && strings.Contains(r.stdout, "spawn") {
			t.Errorf("help %s mentions spawn:\n%s", cmd, r.stdout)
		}
		if strings.Contains(r.stdout, "=-1") || strings.Contains(r.stdout, "\"-1\"") {
			t.Errorf("help %s shows -1 as a default:\n%s", cmd, r.stdout)
		}
	}
	wantCLI(t, runCLI(t, "", "help", "nonesuch"), exitUsage, "hive-agent: help: unexpected argument nonesuch")
	wantCLI(t, runCLI(t, "", "spawn", "-H", "h", "-m", "m", "-d", "cpu", "--max-restarts=-1"), exitUsage, "--max-restarts -1: want 0 or more")
}

// Shell completion comes from the command definitions: the binary answers
// the shell's request, and `completion SHELL` prints the hook for bash,
// zsh and fish.
func TestCLI_Completion(t *testing.T) {
	for line, want := range map[string]string{
		"hive-agent sp":                  "spawn\n",
		"hive-agent spawn --mo":          "--model\n",
		"hive-agent catalog ch":          "check\n",
		"hive-agent completion f":        "fish\n",
		"hive-agent ls --all --tim":      "--timeout\n",
		"hive-agent job j1 --foll":       "--follow\n",
		"hive-agent spawn -H h --restar": "--restart\n",
	} {
		cmd := cliCommand(t, "")
		cmd.Env = append(cmd.Env, "COMP_LINE="+line, "COMP_POINT="+strconv.Itoa(len(line)))
		out, err := cmd.Output()
		if err != nil || string(out) != want {
			t.Errorf("completing %q: %v, got %q, want %q", line, err, out, want)
		}
	}
	for shell, want := range map[string]string{
		"bash": "complete -C \"" + agentBin + "\" hive-agent\n",
		"zsh":  "autoload -U +X bashcompinit && bashcompinit\ncomplete -C \"" + agentBin + "\" hive-agent\n",
		"fish": "complete -f -c hive-agent -a \"(__complete_hive-agent)\"\n",
	} {
		r := runCLI(t, "", "completion", shell)
		if r.code != exitOK || !strings.HasSuffix(r.stdout, want) {
			t.Errorf("completion %s: %s\nwant it to end with %q", shell, r, want)
		}
	}
	wantCLI(t, runCLI(t, "", "completion", "tcsh"), exitUsage, `<shell> must be one of "bash","zsh","fish"`)
	// bash takes the hook and asks the binary.
	if bash, err := exec.LookPath("bash"); err == nil {
		out, err := exec.Command(bash, "-c", "eval \"$("+agentBin+" completion bash)\" && complete -p hive-agent").CombinedOutput()
		if err != nil || !regexp.MustCompile(`complete -C .*hive-agent`).Match(out) {
			t.Errorf("bash: %v\n%s", err, out)
		}
	}
}
