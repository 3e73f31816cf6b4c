package main

import (
	"errors"
	"testing"
)

func TestDefaultDirs_PerPlatform(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	home := func(h string) func() (string, error) {
		return func() (string, error) {
			if h == "" {
				return "", errors.New("no home")
			}
			return h, nil
		}
	}
	for _, c := range []struct {
		name, goos string
		env        map[string]string
		home       string
		logs, js   string
	}{
		{"linux xdg", "linux", map[string]string{"XDG_STATE_HOME": "/s"}, "/home/u", "/s/hive-agent/logs", "/s/hive-agent/jetstream"},
		{"linux home", "linux", nil, "/home/u", "/home/u/.local/state/hive-agent/logs", "/home/u/.local/state/hive-agent/jetstream"},
		{"linux no home", "linux", nil, "", "", ""},
		{"darwin ignores xdg", "darwin", map[string]string{"XDG_STATE_HOME": "/s"}, "/Users/u",
			"/Users/u/Library/Logs/hive-agent", "/Users/u/Library/Application Support/hive-agent/jetstream"},
		{"windows localappdata", "windows", map[string]string{"LOCALAPPDATA": `C:\Users\u\AppData\Local`}, `C:\Users\u`,
			`C:\Users\u\AppData\Local\hive-agent\logs`, `C:\Users\u\AppData\Local\hive-agent\jetstream`},
		{"windows profile", "windows", nil, `C:\Users\u`, `C:\Users\u\AppData\Local\hive-agent\logs`, `C:\Users\u\AppData\Local\hive-agent\jetstream`},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs, js := defaultDirs(c.goos, env(c.env), home(c.home))
			if logs != c.logs || js != c.js {
				t.Errorf("defaultDirs = %q, %q; want %q, %q", logs, js, c.logs, c.js)
			}
		})
	}
}
