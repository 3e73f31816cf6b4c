package spawner

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"time"
)

// The start lock's record of the workers started under it.
//
// A Start must know every worker of the machine's agents (of this user):
// the ports they hold and, for its own hive, the worker ids that run. The
// process table is the truth, but reading all of it cost a start about a
// third of its time. So every agent that holds the start lock leaves a
// record beside it, <lock>.workers, of the workers it knows: those the last
// full scan found plus those started since. The next Start (of any agent)
// reads the record instead of the table and checks each entry against the
// table: its pid must still be a worker that carries the entry's hive and
// worker id in its marker, leads its group and runs as this user; an
// entry whose process is gone or is another process now is dropped, never
// trusted. (Not by start time: an agent's start times are exact only
// within its own run, see startTimeOffsetMS, so two agents may compute
// one process's start 10 ms apart; and a pid that a worker of the same id
// took again is that worker all the same.) Work then grows with the
// workers, not with the processes of the machine.
//
// The table is read in full when the record is missing, unreadable, or
// older than recordTrust: a worker started by an agent that keeps no
// record (an earlier version, during an upgrade) is so seen within
// recordTrust, and the bind test of a port still refuses one that such a
// worker already listens on. In cgroup mode, a worker the view lacks is
// still found in its cgroup before a start of its id (runningInItsCgroup).

// recordTrust is how long after a full scan of the process table the
// record stands in for it. A burst of starts (a queen scaling out) reads
// the table once; a start every few seconds reads it every time, which
// costs nothing anyone waits for at that rate.
const recordTrust = 2 * time.Second

// recordPath is the record beside the start lock at lockPath.
func recordPath(lockPath string) string { return lockPath + ".workers" }

// startRecord is the file's content.
type startRecord struct {
	// ScannedMS is when the process table was last read in full, in ms
	// since the epoch; the entries since were added by Starts.
	ScannedMS int64       `json:"scanned_ms"`
	Workers   []recordRow `json:"workers"`
}

type recordRow struct {
	Hive   string `json:"hive"`
	Worker string `json:"worker"`
	Port   int    `json:"port"`
	PID    int    `json:"pid"`
}

// startView returns the workers running now for a Start that has just
// taken the start lock, and when the process table was last read in full:
// from the record where it is fresh, else from a scan.
func (s *Spawner) startView(ctx context.Context) ([]Worker, time.Time, error) {
	if rec, ok := readStartRecord(recordPath(s.cfg.LockPath)); ok {
		scanned := time.UnixMilli(rec.ScannedMS)
		if age := time.Since(scanned); age >= 0 && age < s.cfg.recordTrust {
			return s.checkRecord(ctx, rec.Workers), scanned, nil
		}
	}
	s.tableReads.Add(1)
	now := time.Now()
	all, err := s.scan(ctx, false, func(m marker) bool { return true })
	return all, now, err
}

// checkRecord keeps the rows whose pid is still that worker: its marker
// names the row's hive and worker id, it leads its group, runs as this
// user, and is not a child of that worker that called setsid.
func (s *Spawner) checkRecord(ctx context.Context, rows []recordRow) []Worker {
	in := inspection{cached: true, parentMarker: parentMarkers()}
	out := make([]Worker, 0, len(rows))
	for _, r := range rows {
		in.keep = func(m marker) bool { return m.is(r.Hive, r.Worker) }
		if w, ok := s.inspect(ctx, r.PID, in); ok {
			out = append(out, w)
		}
	}
	return out
}

// readStartRecord reads the record at path; ok is false when there is
// none or it cannot be read whole.
func readStartRecord(path string) (startRecord, bool) {
	var rec startRecord
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &rec) != nil {
		return startRecord{}, false
	}
	return rec, true
}

// writeStartRecord replaces the record with workers, the process table
// last read in full at scanned. Called with the start lock held, so no
// one reads it meanwhile: it is written in place with one write, not
// aside and renamed (ext4 flushes a file renamed over another). A record
// shorter than the one it replaces is padded with spaces, which JSON
// allows after a value, rather than truncated: one system call less. Only
// a file far larger than its record (many workers ended) is truncated; an
// agent that dies between that write and the truncate leaves the new
// record followed by the old one's tail, which does not parse, so the next
// Start reads the process table.
func writeStartRecord(path string, workers []Worker, scanned time.Time) error {
	rec := startRecord{ScannedMS: scanned.UnixMilli(), Workers: make([]recordRow, 0, len(workers))}
	for _, w := range workers {
		rec.Workers = append(rec.Workers, recordRow{Hive: w.HiveID, Worker: w.WorkerID, Port: w.Port, PID: w.PID})
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	shrink := fi.Size() > 4*int64(len(b))+4096
	if old := fi.Size(); old > int64(len(b)) && !shrink {
		b = append(b, bytes.Repeat([]byte{' '}, int(old)-len(b))...)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return err
	}
	if shrink {
		if err := f.Truncate(int64(len(b))); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
