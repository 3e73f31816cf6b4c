package spawner

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// A worker writes its log itself (O_APPEND, no pipe through the agent), so
// no line carries the time it was written. The agent approximates it: one
// ticker records, for every worker it watches, a checkpoint "<unix ms>
// <log size>" in a sidecar file <log>.idx. A read "since T" starts at the
// size of the last checkpoint at or before T, so it may include up to one
// tick of lines written before T.

// LogIndexInterval is how often the agent records the size of each
// watched worker's log.
const LogIndexInterval = 2 * time.Second

// Bounds of a log's index: past maxIndexBytes it is rewritten keeping
// its newest keepIndexEntries checkpoints.
const (
	maxIndexBytes    = 64 << 10
	keepIndexEntries = 1000
)

// indexPath is the checkpoint file beside a log.
func indexPath(logPath string) string { return logPath + ".idx" }

// IndexLogs records a checkpoint of every watched worker's log now, then
// every interval, and once more when the returned stop is called; stop
// waits for the last one. One goroutine serves all workers.
func (s *Spawner) IndexLogs(interval time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		last := map[string]int64{}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			s.checkpointLogs(last)
			select {
			case <-quit:
				s.checkpointLogs(last)
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// checkpointLogs appends a checkpoint for each watched worker whose log
// size changed since its last one (an unchanged size adds nothing: the
// earlier checkpoint still says where later lines begin). last maps a log
// path to the size last recorded.
func (s *Spawner) checkpointLogs(last map[string]int64) {
	s.mu.Lock()
	paths := make(map[string]bool, len(s.watched))
	for _, w := range s.watched {
		if w.w.LogPath != "" {
			paths[w.w.LogPath] = true
		}
	}
	s.mu.Unlock()
	for p := range last {
		if !paths[p] {
			delete(last, p)
		}
	}
	for p := range paths {
		f, err := s.openConfined(p)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			continue
		}
		// The time is taken after the size, and rounded up to the next
		// millisecond: a checkpoint (t, size) must never claim a size the
		// log reached only after t, or a read since t would skip lines
		// written after t. Rounded down, a checkpoint taken 0.3 ms after a
		// read's point would count as at that point (seen: an agent stopped
		// within the millisecond after a line was written).
		now := ceilMilli(time.Now())
		size := fi.Size()
		prev, seen := last[p]
		if seen && size == prev {
			continue
		}
		if seen && size < prev {
			os.Remove(indexPath(p)) // truncated or rotated: start a new index
		}
		if err := appendCheckpoint(indexPath(p), now, size); err != nil {
			s.cfg.Logger.Warn("cannot record a log checkpoint; logs --since for this worker reads from an earlier point",
				"log_path", p, "err", err)
			continue
		}
		last[p] = size
	}
}

// ceilMilli is t in milliseconds since the epoch, rounded up.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.UnixNano()%int64(time.Millisecond) != 0 {
		ms++
	}
	return ms
}

// appendCheckpoint adds "ms size" to the index at path, compacting it to
// its newest keepIndexEntries lines once it grew past maxIndexBytes.
func appendCheckpoint(path string, ms, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log index: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d %d\n", ms, size)
	fi, serr := f.Stat()
	f.Close()
	if err != nil {
		return fmt.Errorf("write log index: %w", err)
	}
	if serr == nil && fi.Size() > maxIndexBytes {
		return compactIndex(path)
	}
	return nil
}

// compactIndex rewrites the index keeping its newest keepIndexEntries lines.
func compactIndex(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read log index: %w", err)
	}
	lines := bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if n := len(lines); n > keepIndexEntries {
		lines = lines[n-keepIndexEntries:]
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(bytes.Join(lines, nil), '\n'), 0o640); err != nil {
		return fmt.Errorf("compact log index: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("compact log index: %w", err)
	}
	return nil
}

// offsetAt is the log size of the last checkpoint in idx at or before ms,
// 0 when there is none (the read then starts at the log's beginning).
// Lines it cannot parse are skipped.
func offsetAt(idx io.Reader, ms int64) int64 {
	var off int64
	sc := bufio.NewScanner(idx)
	for sc.Scan() {
		t, size, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if !ok {
			continue
		}
		tm, err1 := strconv.ParseInt(string(t), 10, 64)
		sz, err2 := strconv.ParseInt(string(size), 10, 64)
		if err1 != nil || err2 != nil || tm > ms {
			continue
		}
		off = sz // checkpoints are in time order; the last one at or before ms wins
	}
	return off
}

// sinceOffset is where a read since t starts in the log f of size size:
// the checkpoint's size, moved back to the start of its line. A
// checkpoint beyond size (the log was replaced) or no index reads from 0.
func (s *Spawner) sinceOffset(w Worker, f io.ReaderAt, t time.Time, size int64) (int64, error) {
	idx, err := s.openConfined(indexPath(w.LogPath))
	if err != nil {
		return 0, nil // no checkpoints (yet): the whole log is "since"
	}
	defer idx.Close()
	off := offsetAt(idx, t.UnixMilli())
	if off > size {
		return 0, nil
	}
	return lastLineEnd(f, off)
}
