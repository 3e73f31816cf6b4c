package spawner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of an offset read of a worker's log.
const (
	DefaultLogReadBytes = 64 << 10
	MaxLogReadBytes     = 1 << 20
)

// lastLineScan bounds the search for the end of a log's last whole line:
// an unfinished line longer than this is returned as it is.
const lastLineScan = 1 << 20

// errOutsideLogDir marks a log path that is not a regular file inside the
// agent's log directory. A marker is only an environment variable: any
// process of the agent's user can forge one, so its path is never trusted.
var errOutsideLogDir = errors.New("not a regular file inside the agent's log directory")

// LogQuery says which part of a worker's log to read: the last Lines lines
// (whole lines only), or, when From is set, the whole lines after byte
// offset *From, at most MaxBytes of them.
type LogQuery struct {
	Lines    int
	From     *int64
	MaxBytes int64
	// MaxJSON, when positive, bounds the lines JSON-encoded as an array
	// (brackets, quotes, escapes and commas included), so that a reply
	// carrying them fits a NATS message: an offset read stops at the last
	// whole line that fits (Offset says where the next read starts); a
	// lines read keeps the newest lines that fit.
	MaxJSON int64
	// Since, when set, reads like From from the log size of the last
	// checkpoint at or before it (see logindex.go), back to the start of
	// the line holding that point; from 0 when there is none.
	Since *time.Time
}

// LogRead is one read of a worker's log.
type LogRead struct {
	// Path is the log's path as the worker's marker names it.
	Path  string
	Lines []string
	// Offset is where the next read starts: the end of the last line returned.
	Offset int64
	// Size is the file's size when it was read.
	Size int64
	// Truncated is true when the file was shorter than From (it was rotated
	// or truncated) and the read restarted at 0.
	Truncated bool
	// Missing is true when there is no log file (yet).
	Missing bool
	// Outside is true when the path is not a file inside the log directory;
	// nothing was read.
	Outside bool
}

// LogPathOf is where the log of the worker with this id is written; it is
// read for a worker that is no longer running.
func (s *Spawner) LogPathOf(workerID string) string {
	return filepath.Join(s.LogDir(), workerID+".log")
}

// WorkerLogTail is LogTail for a worker's log: a path outside the log
// directory yields no lines (and a warning in the agent's log).
func (s *Spawner) WorkerLogTail(w Worker, n int) ([]string, error) {
	f, err := s.openConfined(w.LogPath)
	if err != nil {
		return []string{}, s.unreadable(w, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat log: %w", err)
	}
	return tail(f, fi.Size(), n)
}

// ReadLog reads part of a worker's log as q asks. Nothing stays open
// between calls. A path outside the log directory reads as Outside.
func (s *Spawner) ReadLog(w Worker, q LogQuery) (LogRead, error) {
	res := LogRead{Path: w.LogPath, Lines: []string{}}
	f, err := s.openConfined(w.LogPath)
	if err != nil {
		res.Missing = errors.Is(err, fs.ErrNotExist)
		res.Outside = errors.Is(err, errOutsideLogDir)
		return res, s.unreadable(w, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("stat log: %w", err)
	}
	res.Size = fi.Size()
	if q.Since != nil {
		from, err := s.sinceOffset(w, f, *q.Since, res.Size)
		if err != nil {
			return res, err
		}
		res.Lines, res.Offset, err = readLines(f, from, res.Size, q.MaxBytes, q.MaxJSON)
		return res, err
	}
	if q.From == nil {
		end, err := lastLineEnd(f, res.Size)
		if err != nil {
			return res, err
		}
		res.Offset = end
		res.Lines, err = tail(f, end, q.Lines)
		if q.MaxJSON > 0 {
			res.Lines = newestThatFit(res.Lines, q.MaxJSON)
		}
		return res, err
	}
	from := *q.From
	if from > res.Size {
		from, res.Truncated = 0, true
	}
	res.Lines, res.Offset, err = readLines(f, from, res.Size, q.MaxBytes, q.MaxJSON)
	return res, err
}

// unreadable turns a failed open into nil for the expected cases (no log
// yet, a forged path), warning about the latter.
func (s *Spawner) unreadable(w Worker, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, errOutsideLogDir):
		s.cfg.Logger.Warn("worker's marker names a log outside the log directory; not reading it",
			"worker_id", w.WorkerID, "pid", w.PID, "log_path", w.LogPath, "log_dir", s.LogDir())
		return nil
	}
	return err
}

// openConfined opens path for reading only when, with every symlink
// resolved, it is a regular file inside the log directory.
func (s *Spawner) openConfined(path string) (*os.File, error) {
	dir, err := filepath.EvalSymlinks(s.LogDir())
	if err != nil {
		// No log directory yet: no worker of this hive ever logged here.
		return nil, fmt.Errorf("log dir: %w", fs.ErrNotExist)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && filepath.Dir(path) == s.LogDir() {
			return nil, err
		}
		return nil, errOutsideLogDir
	}
	rel, err := filepath.Rel(dir, real)
	if err != nil || !filepath.IsAbs(real) || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, errOutsideLogDir
	}
	// O_NOFOLLOW: a symlink put in place of the resolved file since the
	// check is refused rather than followed.
	f, err := os.OpenFile(real, os.O_RDONLY|openNoFollow, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("open log: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errOutsideLogDir
	}
	return f, nil
}

// lastLineEnd is the offset just after the last newline of the first size
// bytes of r: the end of the last whole line. A file without a newline
// ends at 0; an unfinished line longer than lastLineScan counts as whole.
func lastLineEnd(r io.ReaderAt, size int64) (int64, error) {
	const chunk = 32 << 10
	for end := size; end > 0 && size-end < lastLineScan; {
		start := max(0, end-chunk)
		b := make([]byte, end-start)
		if _, err := r.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read log: %w", err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
		if end == 0 {
			return 0, nil
		}
	}
	return size, nil
}

// readLines returns the whole lines in r between from and size, reading at
// most max bytes and, when maxJSON is positive, at most the lines whose
// JSON array takes maxJSON bytes, and the offset after the last one. An
// unfinished last line stays for the next read, unless it alone fills max
// bytes; a line too long for maxJSON is cut where it would overflow: then
// that piece is returned as a line, so a follower always moves on.
func readLines(r io.ReaderAt, from, size, max, maxJSON int64) ([]string, int64, error) {
	n := min(max, size-from)
	if n <= 0 {
		return []string{}, from, nil
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
		return nil, from, fmt.Errorf("read log: %w", err)
	}
	last := bytes.LastIndexByte(b, '\n')
	if last < 0 {
		if n < max {
			return []string{}, from, nil
		}
		piece := fitPiece(b, maxJSON)
		return []string{string(piece)}, from + int64(len(piece)), nil
	}
	lines := []string{}
	used, end := int64(2), 0 // the brackets
	for end <= last {
		raw := b[end : end+bytes.IndexByte(b[end:], '\n')]
		line := strings.TrimSuffix(string(raw), "\r")
		cost := jsonLen(line)
		if len(lines) > 0 {
			cost++ // the comma
		}
		if maxJSON > 0 && used+cost > maxJSON {
			if len(lines) == 0 {
				piece := fitPiece(raw, maxJSON)
				return []string{string(piece)}, from + int64(len(piece)), nil
			}
			break
		}
		lines = append(lines, line)
		used += cost
		end += len(raw) + 1
	}
	return lines, from + int64(end), nil
}

// jsonLen is how many bytes s takes JSON-encoded as the agent encodes replies.
func jsonLen(s string) int64 {
	b, _ := json.Marshal(s)
	return int64(len(b))
}

// fitPiece is the longest start of b, cut at a character boundary, that
// JSON-encoded as a one-line array takes at most maxJSON bytes (all of b
// when maxJSON is not positive); at least one byte, so a reader moves on.
func fitPiece(b []byte, maxJSON int64) []byte {
	if maxJSON <= 0 || 2+jsonLen(string(b)) <= maxJSON {
		return b
	}
	lo, hi := 1, len(b) // lo fits or is the least; hi does not fit
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if 2+jsonLen(string(b[:mid])) <= maxJSON {
			lo = mid
		} else {
			hi = mid
		}
	}
	for cut := lo; cut > 1 && cut > lo-utf8.UTFMax; cut-- {
		if utf8.RuneStart(b[cut]) {
			return b[:cut]
		}
	}
	return b[:lo]
}

// newestThatFit drops the oldest lines until the rest, JSON-encoded as an
// array, take at most maxJSON bytes.
func newestThatFit(lines []string, maxJSON int64) []string {
	used := int64(2)
	for k := len(lines) - 1; k >= 0; k-- {
		cost := jsonLen(lines[k])
		if k < len(lines)-1 {
			cost++
		}
		if used+cost > maxJSON {
			return lines[k+1:]
		}
		used += cost
	}
	return lines
}
