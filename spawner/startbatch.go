package spawner

import (
	"context"
	"os"
	"sync/atomic"
	"time"
)

// startBatch lets Starts queued behind one another in this Spawner share
// one hold of the start lock and one view of the workers running (a scan
// of the process table, or the start lock's record, see reservations.go).
// With the lock held throughout, no other agent can have started a worker
// since, and the workers this Spawner started meanwhile are added as it
// starts them. What may have changed is only
// that workers ended: their ports are then skipped for nothing (harmless),
// and a worker id that seems taken is checked again on its own process
// before a start is refused.
type startBatch struct {
	// waiting counts the Starts waiting for startMu.
	waiting atomic.Int32
	// The rest is guarded by startMu.
	unlock  func() // releases the start lock; nil when not held
	workers []Worker
	scanned time.Time // when the process table was last read in full (reservations.go)
	since   time.Time
	starts  int
}

// Bounds of one hold of the start lock, so that other agents get their turn.
const (
	batchMaxStarts = 32
	batchMaxHold   = 50 * time.Millisecond
)

// enterStart waits for this Spawner's turn to start a worker and returns the
// workers running now, taking the start lock and scanning when it is not
// already held.
func (s *Spawner) enterStart(ctx context.Context) ([]Worker, error) {
	b := &s.batch
	b.waiting.Add(1)
	s.startMu.Lock()
	b.waiting.Add(-1)
	if b.unlock != nil {
		b.starts++
		return b.workers, nil
	}
	unlock, err := lockStart(ctx, s.cfg.LockPath)
	if err != nil {
		s.startMu.Unlock()
		return nil, err
	}
	all, scanned, err := s.startView(ctx)
	if err != nil {
		unlock()
		s.startMu.Unlock()
		return nil, err
	}
	b.unlock, b.workers, b.scanned, b.since, b.starts = unlock, all, scanned, time.Now(), 1
	return all, nil
}

// leaveStart ends a Start: started, when not nil, joins the known workers;
// the start lock is kept for the next Start waiting in this Spawner, if
// any and the hold is not too long yet, else released.
func (s *Spawner) leaveStart(started *Worker) {
	b := &s.batch
	if started != nil {
		b.workers = append(b.workers, *started)
	}
	if b.waiting.Load() == 0 || b.starts >= batchMaxStarts || time.Since(b.since) > batchMaxHold {
		// The record for the next Start, of this agent or another; without
		// it (it could not be written) that Start reads the process table.
		if err := writeStartRecord(recordPath(s.cfg.LockPath), b.workers, b.scanned); err != nil {
			os.Remove(recordPath(s.cfg.LockPath))
			s.cfg.Logger.Warn("cannot write the start lock's record of workers; the next start reads the process table", "err", err)
		}
		b.unlock()
		b.unlock, b.workers = nil, nil
	}
	s.startMu.Unlock()
}

// stillRunning reports whether w, known from the batch's scan, still runs;
// only a fresh scan saw it running for sure.
func (s *Spawner) stillRunning(ctx context.Context, w Worker) bool {
	if s.batch.starts <= 1 {
		return true
	}
	return s.verify(ctx, w) == nil
}
