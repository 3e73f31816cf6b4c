package spawner

import "time"

// The readiness wait's schedule (see probeSchedule).
const (
	// firstProbeGap is the gap after the probe made right at exec: a
	// small server listens a few milliseconds after its exec, and a probe
	// of a port nobody listens on yet costs one refused connect.
	firstProbeGap = 5 * time.Millisecond
	// The doubling is capped at a gap that grows with the time waited:
	// waitedPerGap of it, at least minCapGap, at most maxProbeGap. So what
	// a worker that says nothing in its log when it becomes ready waits on
	// top of its own start is at most about 0.5 % of that start (10 ms for
	// a worker that starts in 2 s, the most waited beyond it 250 ms, after
	// 50 s: llama-swap polls every 250 ms from the start), at the price of
	// up to 100 probes a second in a worker's first 2 s, 10 after 20 s, 4
	// from 50 s on. A probe of a port nobody listens on yet is one refused
	// connect; of a loading server, one small HTTP request.
	minCapGap    = 10 * time.Millisecond
	waitedPerGap = 200
	maxProbeGap  = 250 * time.Millisecond
	// logPollEvery is how often the wait looks at the size of the
	// worker's log (one stat): a model server logs that it listens once
	// it has loaded, so a new line is worth a probe.
	logPollEvery = 5 * time.Millisecond
	// hintGap is the least time between two probes that a log line
	// brought forward, so a worker that logs all the time while it loads
	// is probed at most 50 times a second.
	hintGap = 20 * time.Millisecond
)

// probeSchedule says when the readiness wait probes a worker's health: at
// once, then after firstProbeGap, doubling up to the cap (1/waitedPerGap
// of the time waited, within minCapGap and maxProbeGap); and when the
// worker writes to its log, as soon as hintGap has passed since the last
// probe, with the gap after it at most hintGap again (a server may log its
// listening line a moment before it answers). A worker that logs all the
// time is so probed about every hintGap, one that logs nothing about every
// cap.
type probeSchedule struct {
	start time.Time     // when the wait began
	next  time.Time     // when the next probe is due
	last  time.Time     // when the last probe was made (zero: none yet)
	gap   time.Duration // the gap after the next probe
}

func newProbeSchedule(now time.Time) *probeSchedule {
	return &probeSchedule{start: now, next: now, gap: firstProbeGap}
}

// probed records a probe made at now and schedules the next one.
func (p *probeSchedule) probed(now time.Time) {
	p.last, p.next = now, now.Add(p.gap)
	p.gap = min(p.gap*2, gapCap(now.Sub(p.start)))
}

// gapCap is the longest gap between probes after waiting for waited.
func gapCap(waited time.Duration) time.Duration {
	return min(max(waited/waitedPerGap, minCapGap), maxProbeGap)
}

// logGrew records that the worker's log grew, seen at now: the next probe
// comes as soon as hintGap has passed since the last one.
func (p *probeSchedule) logGrew(now time.Time) {
	soon := now
	if after := p.last.Add(hintGap); !p.last.IsZero() && after.After(now) {
		soon = after
	}
	if soon.Before(p.next) {
		p.next = soon
	}
	p.gap = min(p.gap, hintGap)
}
