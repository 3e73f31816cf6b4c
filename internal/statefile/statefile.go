// Package statefile writes the small files the agent keeps for its next
// run: restart records, the drain state, GPU taints.
package statefile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write replaces the file at path with data. It is written aside and
// renamed over the old one, so a reader (the next agent) never sees half
// of it; the directory is created 0700 and the file is 0600: both are the
// agent's own.
func Write(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Remove removes the file at path; one that is not there is no error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
