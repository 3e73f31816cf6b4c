package main

import (
	"os"
	"path/filepath"
	"runtime"
)

// defaultLogDir is where worker logs go by default; see defaultDirs.
func defaultLogDir() string { l, _ := defaultDirs(runtime.GOOS, os.Getenv, os.UserHomeDir); return l }

// defaultJetStreamDir is where the embedded server keeps JetStream by default.
func defaultJetStreamDir() string {
	_, js := defaultDirs(runtime.GOOS, os.Getenv, os.UserHomeDir)
	return js
}

// defaultDirs returns the default log and JetStream directories where
// programs of goos keep them ("" when no home directory is known):
//
//	linux:   $XDG_STATE_HOME/hive-agent/{logs,jetstream} (~/.local/state)
//	darwin:  ~/Library/Logs/hive-agent and ~/Library/Application Support/hive-agent/jetstream
//	windows: %LOCALAPPDATA%\hive-agent\{logs,jetstream}
//
// It is pure (given the environment and home directory) so that every
// platform's answer is tested on Linux.
func defaultDirs(goos string, getenv func(string) string, home func() (string, error)) (logDir, jsDir string) {
	join := filepath.Join
	if goos == "windows" {
		join = func(p ...string) string { return joinWindows(p...) }
		if d := getenv("LOCALAPPDATA"); d != "" {
			return join(d, "hive-agent", "logs"), join(d, "hive-agent", "jetstream")
		}
	}
	if goos != "darwin" && goos != "windows" {
		if d := getenv("XDG_STATE_HOME"); d != "" {
			return join(d, "hive-agent", "logs"), join(d, "hive-agent", "jetstream")
		}
	}
	h, err := home()
	if err != nil || h == "" {
		return "", ""
	}
	switch goos {
	case "darwin":
		return join(h, "Library", "Logs", "hive-agent"), join(h, "Library", "Application Support", "hive-agent", "jetstream")
	case "windows":
		return join(h, "AppData", "Local", "hive-agent", "logs"), join(h, "AppData", "Local", "hive-agent", "jetstream")
	}
	return join(h, ".local", "state", "hive-agent", "logs"), join(h, ".local", "state", "hive-agent", "jetstream")
}

// joinWindows joins path elements with backslashes, whatever the OS the
// code runs on (filepath.Join on Windows does the same).
func joinWindows(p ...string) string {
	out := ""
	for _, e := range p {
		switch {
		case out == "":
			out = e
		case len(out) > 0 && (out[len(out)-1] == '\\' || out[len(out)-1] == '/'):
			out += e
		default:
			out += `\` + e
		}
	}
	return out
}
