package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/rbee/hive-agent/agent"
)

// parseRun parses args as the agent's command line with env set (and every
// other agent variable unset), and returns its checked configuration.
func parseRun(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HIVE_") || strings.HasPrefix(k, "NATS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c cli
	p, err := newParser(&c, io.Discard, io.Discard, func(int) { t.Fatal("parser exited") })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(args); err != nil {
		return Config{}, err
	}
	return c.Run.config()
}

func TestConfig_FlagsWinOverEnvironment(t *testing.T) {
	c, err := parseRun(t, []string{"--hive-id", "from-flag", "--spawn-wait", "exec"}, map[string]string{
		"HIVE_ID": "from-env", "HIVE_PORT_RANGE": "9200-9210", "HIVE_WORKER_DIR": "/a:/b",
		"HIVE_LOG_DIR": "/logs", "HIVE_SPAWN_WAIT": "ready", "NATS_URL": "nats://env:4222"})
	if err != nil {
		t.Fatal(err)
	}
	if c.HiveID != "from-flag" || c.SpawnWait != "exec" {
		t.Errorf("flags: got hive %q wait %q", c.HiveID, c.SpawnWait)
	}
	if c.PortMin != 9200 || c.PortMax != 9210 || !slices.Equal(c.WorkerDirs, []string{"/a", "/b"}) ||
		c.LogDir != "/logs" || c.NATS.URL != "nats://env:4222" {
		t.Errorf("environment: got %+v", c)
	}
}

func TestConfig_RunCommandIsTheDefault(t *testing.T) {
	for _, args := range [][]string{{"--hive-id", "h"}, {"run", "--hive-id", "h"}} {
		c, err := parseRun(t, args, map[string]string{"HIVE_LOG_DIR": "/l"})
		if err != nil || c.HiveID != "h" {
			t.Errorf("%q: got %q, %v", args, c.HiveID, err)
		}
	}
}

func TestConfig_Defaults(t *testing.T) {
	c, err := parseRun(t, nil, map[string]string{"HIVE_LOG_DIR": "/l"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.URL != "" || c.NATSListen != "127.0.0.1:4222" || c.QueenURL != "http://localhost:7833" ||
		c.PortMin != 9100 || c.PortMax != 9199 || c.SpawnWait != "alive" || c.AliveWindow != 300*time.Millisecond ||
		c.MaxInFlight != 32 || c.HiveID == "" || c.NATS.PingInterval != 4*time.Second || c.NATS.MaxPingsOut != 2 {
		t.Errorf("defaults: got %+v", c)
	}
}

// files writes a set of good and bad credential files and returns their paths.
func files(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	out := map[string]string{"missing": filepath.Join(dir, "missing")}
	for name, content := range map[string]string{
		"garbage": "this is not a key\n",
		"empty":   "\n",
		"seed":    string(seed) + "\n",
		"token":   "s3cr3t\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

func TestConfig_RejectsBadValues(t *testing.T) {
	f := files(t)
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"hive id with a dot", []string{"--hive-id", "a.b"}, nil, "--hive-id"},
		{"domain with a dot", []string{"--jetstream-domain", "a.b"}, nil, `--jetstream-domain (HIVE_JETSTREAM_DOMAIN) "a.b"`},
		{"domain wildcard in env", nil, map[string]string{"HIVE_JETSTREAM_DOMAIN": "*"}, "HIVE_JETSTREAM_DOMAIN"},
		{"port range reversed", []string{"--port-range", "9200-9100"}, nil, "--port-range"},
		{"port range garbage", []string{"--port-range", "lots"}, nil, "--port-range"},
		{"privileged ports", []string{"--port-range", "80-90"}, nil, "--port-range"},
		{"bad wait", []string{"--spawn-wait", "never"}, nil, "--spawn-wait"},
		{"bad duration in env", nil, map[string]string{"HIVE_ALIVE_WINDOW": "soon"}, "HIVE_ALIVE_WINDOW"},
		{"zero in flight", []string{"--max-in-flight", "0"}, nil, "--max-in-flight"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
		{"unknown flag", []string{"--nats-ur", "x"}, nil, `did you mean one of "--nats-url"`},
		{"log level typo", []string{"--log-level", "verbose"}, nil, "--log-level"},
		{"unparsable url", []string{"--nats-url", "htp:/oops"}, nil, `scheme "htp"`},
		{"url with no host", []string{"--nats-url", "nats://"}, nil, "no host"},
		{"url that does not parse", []string{"--nats-url", "nats://a b:4222"}, nil, "--nats-url"},
		{"second url of a list", []string{"--nats-url", "nats://a:4222,http://b"}, nil, `scheme "http"`},
		{"missing creds file", []string{"--nats-creds", f["missing"]}, nil, "--nats-creds"},
		{"garbage creds file", []string{"--nats-creds", f["garbage"]}, nil, "--nats-creds"},
		{"missing ca", []string{"--nats-ca", f["missing"]}, nil, "--nats-ca"},
		{"garbage ca", []string{"--nats-ca", f["garbage"]}, nil, "no PEM certificate"},
		{"cert without key", []string{"--nats-cert", f["garbage"]}, nil, "--nats-key go together"},
		{"garbage cert and key", []string{"--nats-cert", f["garbage"], "--nats-key", f["garbage"]}, nil, "--nats-cert/--nats-key"},
		{"missing key", []string{"--nats-cert", f["garbage"], "--nats-key", f["missing"]}, nil, "--nats-key (NATS_KEY)"},
		{"missing nkey seed", []string{"--nats-nkey-file", f["missing"]}, nil, "--nats-nkey-file"},
		{"garbage nkey seed", []string{"--nats-nkey-file", f["garbage"]}, nil, "--nats-nkey-file"},
		{"empty token file", []string{"--nats-token-file", f["empty"]}, nil, "--nats-token-file"},
		{"missing token file", nil, map[string]string{"NATS_TOKEN_FILE": f["missing"]}, "NATS_TOKEN_FILE"},
		{"user without password", []string{"--nats-user", "u"}, nil, "--nats-password-file"},
		{"password without user", []string{"--nats-password-file", f["token"]}, nil, "--nats-user"},
		{"zero pings", []string{"--nats-max-pings-out", "0"}, nil, "--nats-max-pings-out"},
		{"bad ping interval", []string{"--nats-ping-interval", "-1s"}, nil, "--nats-ping-interval"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := map[string]string{"HIVE_LOG_DIR": "/l"}
			for k, v := range c.env {
				e[k] = v
			}
			_, err := parseRun(t, c.args, e)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error about %s", err, c.want)
			}
		})
	}
}

func TestConfig_AcceptsGoodCredentials(t *testing.T) {
	f := files(t)
	for name, args := range map[string][]string{
		"nkey seed":     {"--nats-nkey-file", f["seed"]},
		"token file":    {"--nats-token-file", f["token"]},
		"user password": {"--nats-user", "u", "--nats-password-file", f["token"]},
		"url list":      {"--nats-url", "nats://a:4222, tls://b:4222,ws://c,wss://d:443"},
	} {
		c, err := parseRun(t, args, map[string]string{"HIVE_LOG_DIR": "/l"})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if name != "url list" && len(c.NATS.opts) != 1 {
			t.Errorf("%s: %d connection options, want 1", name, len(c.NATS.opts))
		}
	}
}

func TestConfig_EveryProblemAtOnce(t *testing.T) {
	_, err := parseRun(t, []string{"--hive-id", "a.b", "--port-range", "x", "--alive-window", "soon"}, map[string]string{"HIVE_LOG_DIR": "/l"})
	for _, want := range []string{"--hive-id", "--port-range", "--alive-window"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to name %s", err, want)
		}
	}
}

func TestConfig_HiveIDFromHostName(t *testing.T) {
	for host, want := range map[string]string{
		"gpu-box-1.example.com": "gpu-box-1",
		"weird host":            "weird_host",
		"":                      "hive",
		strings.Repeat("h", 80): strings.Repeat("h", 64),
	} {
		if got := hiveIDFromHost(host); got != want {
			t.Errorf("hiveIDFromHost(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:secret@a:4222,nats://b:4222": "nats://u:xxxxx@a:4222,nats://b:4222",
		"nats://s3cr3t-token@a:4222":           "nats://xxxxx@a:4222",
		"nats://a:4222":                        "nats://a:4222",
		"nats://tok en@a b:4222":               "nats://xxxxx@a b:4222",
	} {
		if got := agent.Redact(in); got != want {
			t.Errorf("agent.Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfig_FlagOverridesABadEnvironmentValue(t *testing.T) {
	c, err := parseRun(t, []string{"--alive-window", "1s"}, map[string]string{"HIVE_LOG_DIR": "/l", "HIVE_ALIVE_WINDOW": "bogus"})
	if err != nil || c.AliveWindow != time.Second {
		t.Errorf("got %v, %v; want 1s and no error", c.AliveWindow, err)
	}
}
