package spawner

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
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
func (h *Handle) WaitAlive(ctx context.Context, window time.Duration) error {
	t := time.NewTimer(window)
	defer t.Stop()
	select {
	case <-h.done:
		return h.exitedError()
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HealthURL is where the worker's health endpoint answers.
func (h *Handle) HealthURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(h.Port) + "/health"
}

// WaitReady polls the worker's health endpoint until it answers 200 (nil),
// the worker dies (*ExitedError), or timeout passes (ErrNotReady). The
// first probe is after 50 ms, then the interval doubles up to 1 s.
func (h *Handle) WaitReady(parent context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	interval := 50 * time.Millisecond
	last := "no answer yet"
	for {
		select {
		case <-h.done:
			return h.exitedError()
		case <-ctx.Done():
			if parent.Err() == nil {
				return fmt.Errorf("%w: %s did not answer 200 within %s (last: %s); the worker is still running",
					ErrNotReady, h.HealthURL(), timeout, last)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
		ok, status := probe(ctx, client, h.HealthURL())
		if ok {
			return nil
		}
		last = status
		interval = min(interval*2, time.Second)
	}
}

func probe(ctx context.Context, c *http.Client, url string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, resp.Status
}
