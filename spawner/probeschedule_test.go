package spawner

import (
	"testing"
	"time"
)

// The schedule is computed from the times given, never from the clock: the
// test checks when probes are due, not how long anything took.
func TestProbeSchedule_ProbesAtOnceThenDoublesToTheCap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := newProbeSchedule(t0)
	if !p.next.Equal(t0) {
		t.Fatalf("first probe due at %v, want at once (%v)", p.next.Sub(t0), t0)
	}
	now := t0
	var gaps []time.Duration
	for range 9 {
		p.probed(now)
		gaps = append(gaps, p.next.Sub(now))
		now = p.next
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 250, 250, 250}
	for i, g := range gaps {
		if g != want[i]*time.Millisecond {
			t.Fatalf("gaps %v, want %v ms", gaps, want)
		}
	}
}

func TestProbeSchedule_LogLineBringsTheProbeForward(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := newProbeSchedule(t0)
	now := t0
	for range 8 { // gap now at the cap
		p.probed(now)
		now = p.next
	}
	p.probed(now)
	// A line long after the last probe: a probe at once.
	seen := now.Add(100 * time.Millisecond)
	p.logGrew(seen)
	if !p.next.Equal(seen) {
		t.Fatalf("after a log line %v after the last probe, next probe %v after it, want at once", 100*time.Millisecond, p.next.Sub(seen))
	}
	p.probed(seen)
	if got := p.next.Sub(seen); got != hintGap {
		t.Fatalf("the probe after a hinted one comes %v later, want %v", got, hintGap)
	}
	// A line right after a probe: not before hintGap since that probe.
	p.logGrew(seen.Add(time.Millisecond))
	if got := p.next.Sub(seen); got != hintGap {
		t.Fatalf("a line 1 ms after a probe moved the next to %v after it, want %v", got, hintGap)
	}
}

func TestProbeSchedule_ChattyLogIsProbedAboutEveryHintGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := newProbeSchedule(t0)
	now, probes := t0, 0
	end := t0.Add(time.Second)
	for now.Before(end) {
		p.logGrew(now) // a line every poll
		if !now.Before(p.next) {
			p.probed(now)
			probes++
		}
		now = now.Add(logPollEvery)
	}
	// At most one probe per hintGap, besides the first ones (at once, then
	// after the backoff's gaps under hintGap: 5 and 10 ms); at least one
	// per maxProbeGap.
	if limit := int(time.Second/hintGap) + 3; probes > limit {
		t.Fatalf("%d probes in a second of a worker logging every %v, want at most %d", probes, logPollEvery, limit)
	}
	if probes < int(time.Second/maxProbeGap) {
		t.Fatalf("%d probes in a second, want at least %d", probes, time.Second/maxProbeGap)
	}
}
