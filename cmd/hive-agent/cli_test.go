package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// cliRun is one finished run of a client command.
type cliRun struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r cliRun) String() string {
	return "hive-agent " + strings.Join(r.args, " ") + ": exit " + strconv.Itoa(r.code) +
		"\n--- stdout:\n" + r.stdout + "--- stderr:\n" + r.stderr
}

// cliEnv is the environment of a client run: this one without any agent
// or NATS variable, plus env.
func cliEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HIVE_") && !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "NO_COLOR=") {
			out = append(out, kv)
		}
	}
	// The race detector sleeps a second before a successful exit; the
	// tests run many short commands.
	return append(append(out, "GORACE=atexit_sleep_ms=0"), env...)
}

// cliCommand is the agent binary run as a client against server (its
// NATS_URL; empty for none), killed when the test ends.
func cliCommand(t *testing.T, server string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, agentBin, args...)
	if server != "" {
		cmd.Env = cliEnv("NATS_URL=" + server)
	} else {
		cmd.Env = cliEnv()
	}
	return cmd
}

// runCLI runs a client command to its end.
func runCLI(t *testing.T, server string, args ...string) cliRun {
	t.Helper()
	cmd := cliCommand(t, server, args...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	return cliRun{args: args, code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// mustCLI runs a client command that must succeed.
func mustCLI(t *testing.T, server string, args ...string) cliRun {
	t.Helper()
	r := runCLI(t, server, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
	return r
}

// wantCLI checks a run's exit status and that stderr holds every one of
// stderrHas.
func wantCLI(t *testing.T, r cliRun, code int, stderrHas ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d: %s", r.code, code, r)
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q: %s", s, r)
		}
	}
}

// startAgent runs an agent for hive on s and waits until it serves.
func startAgent(t *testing.T, s *server.Server, hive string) *proc {
	t.Helper()
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL())
	a.waitLog(t, "serving worker commands")
	return a
}

// Usage errors exit 2 before anything is connected (no server runs here),
// naming the flag or argument at fault.
func TestCLI_UsageErrorsExit2NamingTheFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"spawn", "--hive", "h", "--device", "cpu"}, []string{"--model", "hive-agent spawn --help"}},
		{[]string{"spawn", "-H", "h", "-m", "m"}, []string{"--device"}},
		{[]string{"spawn", "-m", "m", "-d", "cpu"}, []string{"--hive"}},
		{[]string{"spawn", "-H", "h", "-m", "m", "-d", "cpu", "--wait", "never"}, []string{`--wait "never"`}},
		{[]string{"spawn", "-H", "h", "-m", "m", "-d", "cpu", "--id", "a b"}, []string{`--id "a b"`}},
		{[]string{"stop", "w1", "-H", "a.b"}, []string{`--hive "a.b"`}},
		{[]string{"stop", "w.1", "-H", "h"}, []string{`<worker> "w.1"`}},
		{[]string{"stop", "w1", "-H", "h", "--grace", "61s"}, []string{"--grace"}},
		{[]string{"get", "-H", "h"}, []string{"<worker>"}},
		{[]string{"get", "w1", "-H", "h", "-n", "5000"}, []string{"--lines 5000"}},
		{[]string{"logs", "w1", "-H", "h", "-f", "--json"}, []string{"--follow and --json"}},
		{[]string{"ls", "--server", "http://x"}, []string{"--server (NATS_URL)", `scheme "http"`}},
		{[]string{"ls", "--nats-creds", "/nonexistent/creds"}, []string{"--nats-creds (NATS_CREDS)"}},
		{[]string{"hives", "--timeout", "-1s"}, []string{"--timeout"}},
		{[]string{"hives", "--stale", "0s"}, []string{"--stale 0s"}},
		{[]string{"hives", "--jetstream-domain", "a b"}, []string{`--jetstream-domain (HIVE_JETSTREAM_DOMAIN) "a b"`}},
		{[]string{"job", "j1", "--jetstream-domain", "a.b"}, []string{`--jetstream-domain (HIVE_JETSTREAM_DOMAIN) "a.b"`}},
		{[]string{"setup", "--jetstream-domain", ">"}, []string{"--jetstream-domain"}},
		{[]string{"events", "--jetstream-domain", "x.y"}, []string{"--jetstream-domain"}},
		{[]string{"spwan"}, []string{`did you mean "spawn"`}},
		{[]string{"hievs"}, []string{`did you mean "hives"`}},
		{[]string{"ls", "--hvie", "h"}, []string{`did you mean "--hive"`}},
	} {
		r := runCLI(t, "", c.args...)
		wantCLI(t, r, exitUsage, c.want...)
		if r.stdout != "" {
			t.Errorf("usage error wrote to stdout: %s", r)
		}
	}
}

// No agent answered: no server at all, a hive nobody serves (at once), a
// hive whose subscriber never answers (after --timeout). All exit 3. (No
// agent at all for discovery is an empty fleet: TestCLI_EmptyFleet.)
func TestCLI_NoAgentExits3(t *testing.T) {
	closed := "nats://127.0.0.1:" + strconv.Itoa(freePort(t))
	r := runCLI(t, closed, "ls", "--hive", "h1")
	wantCLI(t, r, exitNoAgent, "error: cannot reach NATS at "+closed)

	s := testenv.NATS(t)
	nc := testenv.Connect(t, s)
	r = runCLI(t, s.ClientURL(), "ls", "--hive", "nobody")
	wantCLI(t, r, exitNoAgent, "error: hive nobody: no agent answered", "no responders")
	r = runCLI(t, s.ClientURL(), "spawn", "--hive", "nobody", "--model", "m", "--device", "cpu")
	wantCLI(t, r, exitNoAgent, "error: hive nobody: no agent answered")

	// A subscriber that takes the commands and never answers: a hung agent.
	if _, err := nc.Subscribe("hive.hung.worker.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	for _, args := range [][]string{
		{"ls", "--hive", "hung", "--timeout", "300ms"},
		{"get", "w1", "--hive", "hung", "--timeout", "300ms"},
		{"stop", "w1", "--hive", "hung", "--timeout", "300ms", "--grace", "0s"},
	} {
		wantCLI(t, runCLI(t, s.ClientURL(), args...), exitNoAgent, "no agent answered", "no answer in time")
	}
}

// On a terminal narration shows the time since the command began and the
// action in its level's colour; in a pipe it is client.EventLine.
func TestCLI_EventLineOnATerminalAndInAPipe(t *testing.T) {
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	e := client.Event{TS: wire.EventTime{Time: start.Add(1500 * time.Millisecond)}, Action: "worker_spawn_failed", Level: "error", Human: "It failed."}
	if got, want := eventLine(style{}, start, e), client.EventLine(e); got != want {
		t.Errorf("pipe: got %q, want %q", got, want)
	}
	got := eventLine(style{tty: true, color: true}, start, e)
	for _, want := range []string{"+1.500s", "\x1b[31mworker_spawn_failed", "It failed."} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal: %q lacks %q", got, want)
		}
	}
	if got := eventLine(style{tty: true}, start, e); strings.Contains(got, "\x1b[") || !strings.Contains(got, "+1.500s") {
		t.Errorf("terminal with NO_COLOR: got %q", got)
	}
}

// The client takes the agent's credential flags and variables.
func TestCLI_CredentialsAsTheAgentTakesThem(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, &server.Options{Authorization: "s3cret"})
	hive := newHive(t)
	startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL(), "--nats-token-file", tokenFile).waitLog(t, "serving worker commands")

	r := runCLI(t, s.ClientURL(), "ls", "--hive", hive)
	wantCLI(t, r, exitNoAgent, "cannot reach NATS", "uthorization")
	mustCLI(t, s.ClientURL(), "ls", "--hive", hive, "--nats-token-file", tokenFile)
	cmd := cliCommand(t, s.ClientURL(), "hives")
	cmd.Env = append(cmd.Env, "NATS_TOKEN_FILE="+tokenFile)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), hive) {
		t.Errorf("hives with NATS_TOKEN_FILE: %v: %s", err, out)
	}
}
