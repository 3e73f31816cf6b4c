package spawner

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ExitTailLines is how many log lines an ExitedError carries.
const ExitTailLines = 20

func (h *Handle) exitedError() error {
	tail, _ := LogTail(h.LogPath, ExitTailLines)
	return &ExitedError{Worker: h.Worker, Exit: h.Exit(), LogTail: tail}
}

// WaitAlive returns nil once the worker has stayed up for window, or an
// *ExitedError when it died first.
//
// Like WaitReady it holds the worker's restart policy while it waits: a
// worker that exits before the wait succeeded is not restarted (the spawn
// answers its exit as an error), one that exits after it is.
func (h *Handle) WaitAlive(ctx context.Context, window time.Duration) error {
	h.hold.take()
	t := time.NewTimer(window)
	defer t.Stop()
	select {
	case <-h.done:
		return h.exitedError()
	case <-t.C:
		if !h.hold.release() {
			return h.exitedError()
		}
		h.Settle()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HealthURL is where the worker's health endpoint answers.
func (h *Handle) HealthURL() string { return h.Worker.HealthURL() }

// HealthURL is where the worker's health endpoint answers: its port on
// 127.0.0.1 and its type's health path.
func (w Worker) HealthURL() string {
	path := w.HealthPath
	if path == "" {
		path = "/health"
	}
	return "http://127.0.0.1:" + strconv.Itoa(w.Port) + path
}

// WaitReady polls the worker's health endpoint until it answers its ready
// status (nil), the worker dies (*ExitedError), or timeout passes
// (ErrNotReady). See WaitReadyFor.
func (h *Handle) WaitReady(parent context.Context, timeout time.Duration) error {
	return h.WaitReadyFor(parent, ReadyWait{Timeout: timeout})
}

// ReadyWait says how long to wait for a worker to become ready, and how to
// tell a worker that is loading from one that hangs.
type ReadyWait struct {
	// Timeout bounds the whole wait.
	Timeout time.Duration
	// StallTimeout, when positive, ends the wait early (ErrNotReady) once
	// the worker made no progress for that long: its log did not grow and
	// its health endpoint answered none of LoadingStatus.
	StallTimeout time.Duration
	// LoadingStatus are the health statuses that mean "still loading".
	LoadingStatus []int
	// OnProgress, when set, is called about every ProgressEvery (default
	// 5 s) while the wait goes on, with the time waited so far and the last
	// line the worker wrote to its log.
	OnProgress    func(elapsed time.Duration, lastLine string)
	ProgressEvery time.Duration
}

// WaitReadyFor polls the worker's health endpoint until it answers its ready
// status (nil), the worker dies (*ExitedError), r.Timeout passes or the
// worker stalls (ErrNotReady). It probes at once, then on the schedule of
// probeSchedule: sooner when the worker writes to its log. See WaitAlive
// for the restart policy.
func (h *Handle) WaitReadyFor(parent context.Context, r ReadyWait) error {
	h.hold.take()
	ctx, cancel := context.WithTimeout(parent, r.Timeout)
	defer cancel()
	h.setPhase(StateLoading)
	defer h.Settle()
	if r.ProgressEvery <= 0 {
		r.ProgressEvery = 5 * time.Second
	}
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer yet"
	start := time.Now()
	sched := newProbeSchedule(start)
	lastProgress, lastSize := start, logSize(h.LogPath)
	nextReport := start.Add(r.ProgressEvery)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		if now := time.Now(); now.Before(sched.next) {
			wake := now.Add(logPollEvery)
			if sched.next.Before(wake) {
				wake = sched.next
			}
			if r.OnProgress != nil && nextReport.Before(wake) {
				wake = nextReport
			}
			timer.Reset(max(wake.Sub(now), 0))
			select {
			case <-h.done:
				return h.exitedError()
			case <-ctx.Done():
				if parent.Err() == nil {
					return fmt.Errorf("%w: %s did not answer %d within %s (last: %s); the worker is still running",
						ErrNotReady, h.HealthURL(), h.readyStatus(), r.Timeout, last)
				}
				return ctx.Err()
			case <-timer.C:
			}
			now = time.Now()
			if size := logSize(h.LogPath); size != lastSize {
				lastSize, lastProgress = size, now
				sched.logGrew(now)
			}
			if r.OnProgress != nil && !now.Before(nextReport) {
				tail, _ := LogTail(h.LogPath, 1)
				line := ""
				if len(tail) > 0 {
					line = tail[0]
				}
				r.OnProgress(now.Sub(start), line)
				nextReport = now.Add(r.ProgressEvery)
			}
			if now.Before(sched.next) {
				continue // only the log or a report was due
			}
		}
		code, status := probe(ctx, client, h.HealthURL())
		sched.probed(time.Now())
		if code == h.readyStatus() {
			if !h.hold.release() {
				return h.exitedError()
			}
			h.setPhase(StateReady)
			return nil
		}
		last = status
		if slices.Contains(r.LoadingStatus, code) {
			lastProgress = time.Now()
		}
		if r.StallTimeout > 0 && time.Since(lastProgress) >= r.StallTimeout {
			tail, _ := LogTail(h.LogPath, ExitTailLines)
			return fmt.Errorf("%w: worker %s made no progress for %s (its log did not grow and %s answered no loading status; last: %s) after %s; the worker is still running; last log lines:\n%s",
				ErrNotReady, h.WorkerID, r.StallTimeout, h.HealthURL(), last, time.Since(start).Round(time.Millisecond), strings.Join(tail, "\n"))
		}
	}
}

func (h *Handle) readyStatus() int {
	if h.ReadyStatus == 0 {
		return http.StatusOK
	}
	return h.ReadyStatus
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// probe returns the health endpoint's status code (0 when it did not
// answer) and a description for messages.
func probe(ctx context.Context, c *http.Client, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Status
}
