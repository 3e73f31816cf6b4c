package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfig_FlagsWinOverEnvironment(t *testing.T) {
	e := env(map[string]string{"HIVE_ID": "from-env", "HIVE_PORT_RANGE": "9200-9210", "HIVE_WORKER_DIR": "/a:/b",
		"HIVE_LOG_DIR": "/logs", "HIVE_SPAWN_WAIT": "ready", "NATS_URL": "nats://env:4222"})
	c, err := parseConfig([]string{"--hive-id", "from-flag", "--spawn-wait", "exec"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HiveID != "from-flag" || c.SpawnWait != "exec" {
		t.Errorf("flags: got hive %q wait %q", c.HiveID, c.SpawnWait)
	}
	if c.PortMin != 9200 || c.PortMax != 9210 || !slices.Equal(c.WorkerDirs, []string{"/a", "/b"}) ||
		c.LogDir != "/logs" || c.NATSURL != "nats://env:4222" {
		t.Errorf("environment: got %+v", c)
	}
}

func TestConfig_Defaults(t *testing.T) {
	c, err := parseConfig(nil, env(map[string]string{"HIVE_LOG_DIR": "/l"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSURL != "" || c.NATSListen != "127.0.0.1:4222" || c.QueenURL != "http://localhost:7833" ||
		c.PortMin != 9100 || c.PortMax != 9199 || c.SpawnWait != "alive" || c.AliveWindow != 300*time.Millisecond ||
		c.MaxInFlight != 32 || c.HiveID == "" {
		t.Errorf("defaults: got %+v", c)
	}
}

func TestConfig_RejectsBadValues(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"hive id with a dot", []string{"--hive-id", "a.b"}, nil, "hive id"},
		{"port range reversed", []string{"--port-range", "9200-9100"}, nil, "port range"},
		{"port range garbage", []string{"--port-range", "lots"}, nil, "port range"},
		{"privileged ports", []string{"--port-range", "80-90"}, nil, "port range"},
		{"bad wait", []string{"--spawn-wait", "never"}, nil, "spawn wait"},
		{"bad duration in env", nil, map[string]string{"HIVE_ALIVE_WINDOW": "soon"}, "HIVE_ALIVE_WINDOW"},
		{"cert without key", []string{"--nats-cert", "c.pem"}, nil, "nats-key"},
		{"zero in flight", []string{"--max-in-flight", "0"}, nil, "max in flight"},
		{"stray argument", []string{"extra"}, nil, "unexpected"},
		{"log level typo", []string{"--log-level", "verbose"}, nil, "log level"},
		{"missing creds file", []string{"--nats-creds", "/nonexistent/hive.creds"}, nil, "nats-creds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := map[string]string{"HIVE_LOG_DIR": "/l"}
			for k, v := range c.env {
				e[k] = v
			}
			_, err := parseConfig(c.args, env(e), io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error about %s", err, c.want)
			}
		})
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
	got := redact("nats://u:secret@a:4222,nats://b:4222")
	if strings.Contains(got, "secret") || !strings.Contains(got, "nats://b:4222") {
		t.Errorf("redact: got %q", got)
	}
}

func TestConfig_FlagOverridesABadEnvironmentValue(t *testing.T) {
	e := env(map[string]string{"HIVE_LOG_DIR": "/l", "HIVE_ALIVE_WINDOW": "bogus"})
	c, err := parseConfig([]string{"--alive-window", "1s"}, e, io.Discard)
	if err != nil || c.AliveWindow != time.Second {
		t.Errorf("got %v, %v; want 1s and no error", c.AliveWindow, err)
	}
}
