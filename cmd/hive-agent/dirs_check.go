package main

import (
	"errors"
	"fmt"
	"os"
)

// checkDirs makes sure, before anything starts, that the directories the
// agent writes to later can be created and written: the worker log
// directory and, for the embedded server's JetStream, its store. Without
// this an agent under a service manager that created neither started,
// looked healthy, and failed its first spawn.
func checkDirs(cfg Config) error {
	dirs := []struct{ flag, env, path string }{{"--log-dir", "HIVE_LOG_DIR", cfg.LogDir}, {"--state-dir", "HIVE_STATE_DIR", cfg.DayTwo.StateDir}}
	if cfg.NATS.URL == "" && cfg.JetStream != "off" {
		dirs = append(dirs, struct{ flag, env, path string }{"--jetstream-dir", "HIVE_JETSTREAM_DIR", cfg.JetStreamDir})
	}
	var errs []error
	for _, d := range dirs {
		if err := writableDir(d.path); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s) %s: cannot be created or written: %w", d.flag, d.env, d.path, err))
		}
	}
	return errors.Join(errs...)
}

// writableDir creates dir (mode 0750) when missing and checks that a file
// can be created in it.
func writableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err // "mkdir /var/log/x: permission denied"
	}
	f, err := os.CreateTemp(dir, ".hive-agent-check-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary name says nothing
		}
		return fmt.Errorf("create a file in it: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}
