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
	var at []time.Duration // time waited at each probe
	for now.Sub(t0) < 2*time.Minute {
		p.probed(now)
		gaps = append(gaps, p.next.Sub(now))
		at = append(at, now.Sub(t0))
		now = p.next
	}
	if gaps[0] != 5*time.Millisecond || gaps[1] != 10*time.Millisecond {
		t.Fatalf("first gaps %v, want 5 ms then 10 ms", gaps[:2])
	}
	inFirst2s := 0
	for i, g := range gaps {
		// What a silent worker waits beyond its start is under one gap:
		// 10 ms in the first 2 s, then at most 0.5 % of the time waited
		// (the cap one probe behind), never more than maxProbeGap.
		limit := max(minCapGap, (at[i]+g)/waitedPerGap)
		if g > limit || g > maxProbeGap {
			t.Fatalf("gap %v after waiting %v: want at most %v (and %v)", g, at[i], limit, maxProbeGap)
		}
		if at[i] < 2*time.Second {
			inFirst2s++
		}
	}
	if last := gaps[len(gaps)-1]; last != maxProbeGap {
		t.Errorf("after %v the gap is %v, want the cap %v", at[len(at)-1], last, maxProbeGap)
	}
	// The price: about 100 probes a second in the first 2 s, far fewer later.
	if inFirst2s > 2*int(time.Second/minCapGap)+2 {
		t.Errorf("%d probes in the first 2 s, want at most %d", inFirst2s, 2*int(time.Second/minCapGap)+2)
	}
	// 200 in the first 2 s, 200·ln(50/2) till the cap at 50 s, then 4 a second.
	if n := len(gaps); n > 1200 {
		t.Errorf("%d probes in 2 minutes, want at most 1200", n)
	}
}

func TestProbeSchedule_LogLineBringsTheProbeForward(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := newProbeSchedule(t0)
	now := t0
	for now.Sub(t0) < time.Minute { // gap now at the cap
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
	now := t0
	// A minute into the wait the silent schedule probes every 250 ms; in
	// the first seconds it probes every 10 ms anyway, log or not.
	for now.Sub(t0) < time.Minute {
		p.probed(now)
		now = p.next
	}
	probes := 0
	end := now.Add(time.Second)
	for now.Before(end) {
		p.logGrew(now) // a line every poll
		if !now.Before(p.next) {
			p.probed(now)
			probes++
		}
		now = now.Add(logPollEvery)
	}
	// At most one probe per hintGap (and one more for the line that
	// started it all); at least one per maxProbeGap.
	if limit := int(time.Second/hintGap) + 2; probes > limit {
		t.Fatalf("%d probes in a second of a worker logging every %v, want at most %d", probes, logPollEvery, limit)
	}
	if probes < int(time.Second/maxProbeGap) {
		t.Fatalf("%d probes in a second, want at least %d", probes, time.Second/maxProbeGap)
	}
}
