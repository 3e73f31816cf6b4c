package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/rbee/hive-agent/commands"
	"github.com/rbee/hive-agent/internal/testenv"
)

// The README's recipe: `go build -o hive-agent ./cmd/hive-agent` in a git
// checkout, with Go's stock settings. Go stamps such a build with a VCS
// pseudo-version (v0.0.0-<date>-<hash>), which the NATS micro service
// refused: the binary exited at once.
func TestAgent_BuildsAndStartsAsTheREADMESays(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hive-agent")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hive-agent")
	build.Dir, build.Env = testenv.RepoRoot(), testenv.StockGoEnv()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	// Go stamps VCS information where it can read the checkout (a plain
	// clone; not, for example, a linked worktree); the version must then be
	// the VCS one.
	meta, _ := exec.Command("go", "version", "-m", bin).Output()
	if v := strings.TrimSpace(string(out)); strings.Contains(string(meta), "vcs.revision=") && !strings.HasPrefix(v, "hive-agent v") {
		t.Errorf("--version of a VCS-stamped build: %q, want the version Go stamped (v...)", v)
	}

	hive := testenv.HiveID(t)
	testenv.NoLeftovers(t, hive)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := startCmd(t, exec.Command(bin, "--hive-id", hive, "--nats-listen", addr, "--log-dir", t.TempDir(), "--log-format", "text"))
	a.waitLog(t, "serving worker commands")
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := listPIDs(t, nc, hive); len(got) != 0 {
		t.Errorf("list: %v, want no workers", got)
	}
	// The service registered, with the build's own version in its metadata.
	msg, err := nc.Request("$SRV.INFO.hive-agent", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Version  string            `json:"version"`
		Metadata map[string]string `json:"metadata"`
	}
	json.Unmarshal(msg.Data, &info)
	if want := strings.TrimPrefix(strings.TrimSpace(string(out)), "hive-agent "); info.Metadata["version"] != want ||
		info.Version != strings.TrimPrefix(want, "v") {
		t.Errorf("service version %q, metadata %q; want %q without and with its v", info.Version, info.Metadata["version"], want)
	}
	if err := a.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestAgent_HelpVersionAndUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args               []string
		code               int
		stdout, stderr     string
		stdoutMustNotBeSet bool
	}{
		{args: []string{"--help"}, code: 0, stdout: "--nats-url"},
		{args: []string{"-h"}, code: 0, stdout: "--hive-id"},
		{args: []string{"run", "--help"}, code: 0, stdout: "--nats-password-file"},
		{args: []string{"--version"}, code: 0, stdout: "hive-agent "},
		{args: []string{"--nats-ur", "nats://x"}, code: 2, stderr: `unknown flag --nats-ur, did you mean one of "--nats-url"`, stdoutMustNotBeSet: true},
		{args: []string{"--hive-idd", "x"}, code: 2, stderr: `did you mean "--hive-id"`, stdoutMustNotBeSet: true},
		{args: []string{"--spawn-wait", "never"}, code: 2, stderr: "--spawn-wait", stdoutMustNotBeSet: true},
	} {
		cmd := exec.Command(agentBin, c.args...)
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		if got := cmd.ProcessState.ExitCode(); got != c.code {
			t.Errorf("%q: exit %d, want %d; stderr: %s", c.args, got, c.code, stderr.String())
		}
		if !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("%q: stdout %q, stderr %q; want %q and %q", c.args, stdout.String(), stderr.String(), c.stdout, c.stderr)
		}
		if c.stdoutMustNotBeSet && stdout.String() != "" {
			t.Errorf("%q: stdout %q, want nothing", c.args, stdout.String())
		}
	}
}

// listener counts the connections made to a TCP port nobody serves.
func listener(t *testing.T) (url string, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return "nats://" + l.Addr().String(), accepted
}

// A configuration that cannot work exits 2 at once, before any connection
// attempt, naming what is wrong; retrying forever would look healthy.
func TestAgent_BadConfigurationExits2BeforeConnecting(t *testing.T) {
	url, accepted := listener(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key or certificate\n"), 0o600)
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unparsable url", []string{"--nats-url", "htp:/oops"}, "--nats-url"},
		{"url without host", []string{"--nats-url", "nats://:4222"}, "no host"},
		{"missing creds", []string{"--nats-url", url, "--nats-creds", missing}, "--nats-creds"},
		{"garbage creds", []string{"--nats-url", url, "--nats-creds", garbage}, "--nats-creds"},
		{"garbage ca", []string{"--nats-url", url, "--nats-ca", garbage}, "--nats-ca"},
		{"missing ca", []string{"--nats-url", url, "--nats-ca", missing}, "--nats-ca"},
		{"garbage cert and key", []string{"--nats-url", url, "--nats-cert", garbage, "--nats-key", garbage}, "--nats-cert/--nats-key"},
		{"missing key", []string{"--nats-url", url, "--nats-cert", garbage, "--nats-key", missing}, "--nats-key (NATS_KEY)"},
		{"garbage nkey seed", []string{"--nats-url", url, "--nats-nkey-file", garbage}, "--nats-nkey-file"},
		{"missing nkey seed", []string{"--nats-url", url, "--nats-nkey-file", missing}, "--nats-nkey-file"},
		{"missing token file", []string{"--nats-url", url, "--nats-token-file", missing}, "--nats-token-file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startBinary(t, t.TempDir(), append([]string{"--hive-id", "h"}, c.args...)...)
			if code := p.wait(t); code != 2 {
				t.Errorf("exit %d, want 2; output:\n%s", code, p.out.String())
			}
			if !strings.Contains(p.out.String(), c.want) {
				t.Errorf("output %q does not name %s", p.out.String(), c.want)
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connection attempts to NATS with a bad configuration, want none", n)
	}
}

// Ctrl-C while the agent still waits for its NATS server is a normal stop.
func TestAgent_InterruptWhileWaitingForNATSIsANormalStop(t *testing.T) {
	a := startBinary(t, t.TempDir(), "--hive-id", "h", "--nats-url", "nats://127.0.0.1:"+strconv.Itoa(freePort(t)))
	a.waitLog(t, "NATS not reachable yet; retrying")
	if err := a.stop(t, syscall.SIGINT); err != nil {
		t.Errorf("exit: %v, want 0", err)
	}
	if out := a.out.String(); strings.Contains(out, "level=ERROR") || !strings.Contains(out, "stopped before NATS was reached") {
		t.Errorf("output:\n%s\nwant no error line and the reason it stopped", out)
	}
}

// startServer starts an embedded NATS server with opts on a random port.
func startServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	return testenv.NATSWith(t, opts)
}

// An agent the server will not let hear one of its commands must not keep
// running deaf: it exits 1 naming the subject, so a supervisor's
// Restart=on-failure and its logs tell the operator.
func TestAgent_RefusedSubscriptionExits1(t *testing.T) {
	hive := testenv.HiveID(t)
	s := startServer(t, &server.Options{Users: []*server.User{{
		Username: "agent", Password: "pw",
		Permissions: &server.Permissions{Subscribe: &server.SubjectPermission{
			Allow: []string{">"}, Deny: []string{"hive." + hive + ".worker.get"}}},
	}}})
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("pw\n"), 0o600)
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-url", s.ClientURL(), "--nats-user", "agent", "--nats-password-file", pw)
	if code := a.wait(t); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if out := a.out.String(); !strings.Contains(out, `subscription to \"hive.`+hive+`.worker.get\"`) {
		t.Errorf("output does not name the refused subject:\n%s", out)
	}
}

// A token never shows in the agent's output nor in a worker's environment,
// whichever way it was given; user and password and nkey files work.
func TestAgent_SecretsStayOutOfLogsAndWorkers(t *testing.T) {
	const token = "s3cr3t-t0ken-f0r-the-test"
	user, _ := nkeys.CreateUser()
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content+"\n"), 0o600)
		return p
	}
	tokenServer := startServer(t, &server.Options{Authorization: token})
	userServer := startServer(t, &server.Options{
		Users: []*server.User{{Username: "hive", Password: token}},
		Nkeys: []*server.NkeyUser{{Nkey: pub}},
	})
	tokenURL := "nats://" + token + "@" + strings.TrimPrefix(tokenServer.ClientURL(), "nats://")
	for _, c := range []struct {
		name string
		s    *server.Server
		args []string
		env  []string
	}{
		{"token in NATS_URL", tokenServer, nil, []string{"NATS_URL=" + tokenURL}},
		{"token in --nats-url", tokenServer, []string{"--nats-url", tokenURL}, nil},
		{"token file", tokenServer, []string{"--nats-url", tokenServer.ClientURL()}, []string{"NATS_TOKEN_FILE=" + write("token", token)}},
		{"user and password file", userServer, []string{"--nats-url", userServer.ClientURL(), "--nats-user", "hive", "--nats-password-file", write("pw", token)}, nil},
		{"nkey seed file", userServer, []string{"--nats-url", userServer.ClientURL(), "--nats-nkey-file", write("seed", string(seed))}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			hive := newHive(t)
			cmd := exec.Command(agentBin, append([]string{"--hive-id", hive, "--worker-dir", workerDir, "--log-dir", t.TempDir(),
				"--port-range", "9700-9799", "--log-format", "text", "--log-level", "debug"}, c.args...)...)
			cmd.Env = append(os.Environ(), append(c.env, "HIVE_QUEEN_URL=http://queen:7833")...)
			a := startCmd(t, cmd)
			a.waitLog(t, "serving worker commands")
			auth := nats.UserInfo("hive", token)
			if c.s == tokenServer {
				auth = nats.Token(token)
			}
			nc, err := nats.Connect(c.s.ClientURL(), auth)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			var sp commands.SpawnResult
			request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"w","model_id":"m","device":"cpu","wait":"exec"}`, &sp)
			env := testenv.Environ(sp.PID)
			if env["HIVE_AGENT_WORKER_ID"] != "w" {
				t.Fatalf("worker environment has no marker: %v", env)
			}
			for k, v := range env {
				if strings.Contains(v, token) || strings.HasPrefix(k, "NATS_") || (strings.HasPrefix(k, "HIVE_") && !strings.HasPrefix(k, "HIVE_AGENT_")) {
					t.Errorf("worker environment has %s=%s", k, v)
				}
			}
			request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"w"}`, nil)
			a.stop(t, syscall.SIGTERM)
			if out := a.out.String(); strings.Contains(out, token) {
				t.Errorf("agent output shows the secret:\n%s", out)
			}
		})
	}
}
