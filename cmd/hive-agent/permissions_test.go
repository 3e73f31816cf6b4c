//go:build unix

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/internal/testenv"
)

// permHive is the hive id deploy/nats/permissions/hive.conf is written for.
const permHive = "gpu-node-07"

// permUser is one user of deploy/nats/hive-agent.conf: the client flags
// that log in as it.
type permUser []string

// permServer starts a NATS server from exactly deploy/nats/hive-agent.conf
// (its permission files included), on a free loopback port with its
// JetStream store in a temporary directory, and returns the users.
func permServer(t *testing.T) (s *server.Server, queen, hive, operator permUser) {
	t.Helper()
	dir := t.TempDir()
	users := map[string]*permUser{"queen": &queen, "hive-" + permHive: &hive, "operator": &operator}
	for name, u := range users {
		env := strings.ToUpper(strings.SplitN(name, "-", 2)[0]) + "_PASSWORD"
		t.Setenv(env, "pw-"+name)
		pw := filepath.Join(dir, name+".pw")
		if err := os.WriteFile(pw, []byte("pw-"+name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		*u = permUser{"--nats-user", name, "--nats-password-file", pw}
	}
	opts, err := server.ProcessConfigFile(filepath.Join(repoRoot(t), "deploy", "nats", "hive-agent.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Port, opts.StoreDir = -1, filepath.Join(dir, "js")
	return testenv.NATSWith(t, opts), queen, hive, operator
}

// lockHive serialises the tests that use the fixed hive id of the
// permission file across test processes of this user: its workers are
// found by their hive's marker.
func lockHive(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "hive-agent-test-"+permHive+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
	testenv.NoLeftovers(t, permHive)
	t.Cleanup(func() { testenv.Stop(permHive) })
}

// cli runs a client command as user against s.
func (u permUser) cli(t *testing.T, s *server.Server, args ...string) cliRun {
	t.Helper()
	return runCLI(t, s.ClientURL(), append(args, u...)...)
}

// The agent under the hive set serves request/reply and the intake; the
// queen may do everything; operator-read reads (ls, get, logs, hives, job, events)
// and its spawn and stop are refused at once, naming the subject.
func TestPermissions_TheSetsAsDocumented(t *testing.T) {
	lockHive(t)
	s, queen, hive, operator := permServer(t)
	a := startBinary(t, t.TempDir(), append([]string{"--hive-id", permHive, "--nats-url", s.ClientURL(), "--jetstream", "on"}, hive...)...)
	a.waitLog(t, "taking durable intake commands")
	refusals := make(chan error, 4)
	onc, err := nats.Connect(s.ClientURL(), nats.UserInfo("operator", "pw-operator"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refusals <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer onc.Close()
	events := make(chan *nats.Msg, 64)
	if _, err := onc.ChanSubscribe("hive.*.events.>", events); err != nil {
		t.Fatal(err)
	}
	onc.Flush()

	sp := queen.cli(t, s, "spawn", "--hive", permHive, "--model", "m", "--device", "cpu", "--id", "w1", "--job", "perm-job-1")
	if sp.code != 0 {
		t.Fatalf("queen spawn: %s", sp)
	}
	for _, args := range [][]string{
		{"ls", "--hive", permHive},
		{"ls", "--all"},
		{"hives"},
		{"get", "w1", "--hive", permHive},
		{"logs", "w1", "--hive", permHive},
		{"job", "perm-job-1"},
		{"events", "--all", "--since", "1h"},
		{"events", "--hive", permHive, "--since", "10m"},
	} {
		if r := operator.cli(t, s, args...); r.code != 0 || (args[0] != "logs" && r.stdout == "") {
			t.Errorf("operator-read: %s", r)
		}
	}
	// The replay holds the spawn's started event.
	if r := operator.cli(t, s, "events", "--hive", permHive, "--since", "10m"); !strings.Contains(r.stdout, "worker.started") {
		t.Errorf("operator-read events --since: no worker.started line: %s", r)
	}
	// Refused at once (not after --timeout), naming the subject.
	for _, tc := range []struct {
		args    []string
		subject string
	}{
		{[]string{"spawn", "--hive", permHive, "--model", "m", "--device", "cpu", "--id", "w2"}, "hive." + permHive + ".worker.spawn"},
		{[]string{"stop", "w1", "--hive", permHive}, "hive." + permHive + ".worker.delete"},
		{[]string{"restart", "w1", "--hive", permHive}, "hive." + permHive + ".worker.restart"},
		{[]string{"drain", "--hive", permHive}, "hive." + permHive + ".agent.drain"},
	} {
		r := operator.cli(t, s, append(tc.args, "--timeout", "1m")...)
		wantCLI(t, r, 1, `error: permission denied: publish to "`+tc.subject+`"`)
		if strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("want the one error line: %s", r)
		}
	}
	// The queen drains and resumes the agent that runs under the hive set
	// (its drain events and its service re-added with the new metadata).
	for _, cmd := range []string{"drain", "resume"} {
		if r := queen.cli(t, s, cmd, "--hive", permHive); r.code != 0 {
			t.Errorf("queen %s: %s", cmd, r)
		}
	}
	// The hive's own user cannot command it either.
	r := hive.cli(t, s, "stop", "w1", "--hive", permHive)
	wantCLI(t, r, 1, `error: permission denied: publish to "hive.`+permHive+`.worker.delete"`)

	// A command through the intake, as the queen, is run and its result
	// stored, which operator-read follows.
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("queen", "pw-queen"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "hive." + permHive + ".intake.worker.list",
		Header: nats.Header{"Nats-Msg-Id": {"perm-intake-1"}}, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if r := operator.cli(t, s, "job", "perm-intake-1", "-f", "--timeout", "30s"); r.code != 0 || !strings.Contains(r.stdout, "hive: ") {
		t.Errorf("operator-read follows an intake job: %s", r)
	}
	// operator-read heard the worker's lifecycle events, and cannot put a
	// command into the intake.
	select {
	case m := <-events:
		if !strings.HasPrefix(m.Subject, "hive."+permHive+".events.") {
			t.Errorf("event on %s", m.Subject)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("operator-read heard no event of hive %s", permHive)
	}
	intakeSubj := "hive." + permHive + ".intake.worker.spawn"
	if err := onc.Publish(intakeSubj, []byte(`{"model_id":"m","device":"cpu"}`)); err != nil {
		t.Fatal(err)
	}
	onc.Flush()
	select {
	case err := <-refusals:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"`+intakeSubj+`"`) {
			t.Errorf("operator-read intake publish: %v, want a permissions violation naming %s", err, intakeSubj)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("operator-read intake publish: no permissions violation")
	}
	if r := queen.cli(t, s, "stop", "w1", "--hive", permHive); r.code != 0 {
		t.Errorf("queen stop: %s", r)
	}
	if out := a.out.String(); strings.Contains(out, "Permissions Violation") || strings.Contains(out, "NATS error") {
		t.Errorf("the agent under the hive set hit a permission error:\n%s", out)
	}
}

// The hive set lets an agent hear only its own hive: started for another
// hive id with those credentials, it exits 1 naming the refused subject.
func TestPermissions_HiveSetRefusesAnotherHive(t *testing.T) {
	s, _, hive, _ := permServer(t)
	other := newHive(t)
	a := startBinary(t, t.TempDir(), append([]string{"--hive-id", other, "--nats-url", s.ClientURL(), "--jetstream", "off"}, hive...)...)
	if code := a.wait(t); code != 1 {
		t.Fatalf("agent for hive %s with the credentials of %s: exit %d, want 1", other, permHive, code)
	}
	if out := a.out.String(); !strings.Contains(out, "refused the agent's subscription to") || !strings.Contains(out, "hive."+other+".worker.") {
		t.Errorf("exit without naming the refused subscription:\n%s", out)
	}
}

// docs/operations.md shows every file of deploy/nats as a fenced block,
// headed by its path, byte for byte as the tests load it.
func TestPermissions_DocsShowTheFiles(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "deploy", "nats", "*.conf"))
	more, _ := filepath.Glob(filepath.Join(root, "deploy", "nats", "permissions", "*.conf"))
	files = append(files, more...)
	if len(files) != 4 {
		t.Fatalf("deploy/nats holds %d .conf files, want the server file and three sets: %v", len(files), files)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		head := "`" + filepath.ToSlash(rel) + "`:\n\n```conf\n"
		_, rest, ok := strings.Cut(string(doc), head)
		if !ok {
			t.Errorf("docs/operations.md has no block headed %q", strings.TrimSpace(head))
			continue
		}
		got, _, ok := strings.Cut(rest, "```\n")
		if !ok || got != string(want) {
			t.Errorf("docs/operations.md's block of %s differs from the file:\n--- doc:\n%s--- file:\n%s", rel, got, want)
		}
	}
}
