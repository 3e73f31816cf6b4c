package spawner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// Limits on a log tail, so that a get with 1000 lines of a chatty or binary
// log still fits a NATS message (1 MB by default) after JSON escaping, which
// can grow a control character to six bytes.
const (
	MaxLogLineBytes = 2048
	MaxLogTailBytes = 128 << 10
)

// LogTail returns the last n lines of the log at path, oldest first. Lines
// longer than MaxLogLineBytes are cut (and end in "…"), and the oldest lines
// are dropped when the tail would exceed MaxLogTailBytes. A missing log is
// an empty tail. It reads any path: for paths taken from a process's
// marker use (*Spawner).WorkerLogTail, which stays inside the log directory.
func LogTail(path string, n int) ([]string, error) {
	if n <= 0 {
		return []string{}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("seek log: %w", err)
	}
	return tail(f, size, n)
}

// tail returns the last n lines of the first end bytes of r, with the
// limits LogTail documents.
func tail(r io.ReaderAt, end int64, n int) ([]string, error) {
	if n <= 0 {
		return []string{}, nil
	}
	// Read backwards in chunks until n+1 newlines are in hand; never read
	// more than n full-length lines could need.
	limit := int64(n+1) * (MaxLogLineBytes + 1)
	limit = min(limit, 4*MaxLogTailBytes+int64(n)*MaxLogLineBytes)
	const chunk = 32 << 10
	var buf []byte
	off := end
	for off > 0 && int64(len(buf)) < limit && bytes.Count(buf, []byte{'\n'}) <= n {
		step := min(int64(chunk), off)
		off -= step
		b := make([]byte, step)
		if _, err := r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read log: %w", err)
		}
		buf = append(b, buf...)
	}
	text := strings.TrimSuffix(string(buf), "\n")
	if text == "" {
		return []string{}, nil
	}
	lines := strings.Split(text, "\n")
	if off > 0 {
		if len(lines) > 1 {
			lines = lines[1:] // the first piece may start mid-line
		} else {
			// One line longer than all that was read: show its end, marked.
			first := lines[0]
			for len(first) > 0 && !utf8.RuneStart(first[0]) {
				first = first[1:]
			}
			lines[0] = "…" + first
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	total := 0
	keepFrom := 0
	for i := len(lines) - 1; i >= 0; i-- {
		lines[i] = cutLine(strings.TrimSuffix(lines[i], "\r"))
		total += len(lines[i])
		if total > MaxLogTailBytes {
			keepFrom = i + 1
			break
		}
	}
	return lines[keepFrom:], nil
}

func cutLine(s string) string {
	if len(s) <= MaxLogLineBytes {
		return s
	}
	cut := MaxLogLineBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
