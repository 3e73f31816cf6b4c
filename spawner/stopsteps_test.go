package spawner

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// stopRecord is a fake worker for stopSteps: which steps it got, which
// waits were asked of it, and how it answers them.
type stopRecord struct {
	calls   []string
	softErr error
	hardErr error
	// goneAfter says whether the worker is gone after each wait, in order.
	goneAfter []bool
	ctxAlive  []bool
}

func (r *stopRecord) steps() stopSteps {
	return stopSteps{
		soft: "CTRL_BREAK", hard: "TERMINATE",
		SendSoft: func() error { r.calls = append(r.calls, "soft"); return r.softErr },
		SendHard: func() error { r.calls = append(r.calls, "hard"); return r.hardErr },
		WaitGone: func(ctx context.Context, d time.Duration) bool {
			r.calls = append(r.calls, "wait "+d.String())
			r.ctxAlive = append(r.ctxAlive, ctx.Err() == nil)
			g := r.goneAfter[0]
			r.goneAfter = r.goneAfter[1:]
			return g
		},
		OnSignal:     func(s string) { r.calls = append(r.calls, "announce "+s) },
		OnSoftFailed: func(err error) { r.calls = append(r.calls, "soft failed") },
	}
}

func TestStopSteps_Sequence(t *testing.T) {
	const grace = 3 * time.Second
	kill := "wait " + KillWait.String()
	for _, c := range []struct {
		name      string
		rec       stopRecord
		wantSent  string
		wantOK    bool
		wantErr   bool
		wantCalls []string
	}{
		{"leaves within the grace", stopRecord{goneAfter: []bool{true}}, "CTRL_BREAK", true, false,
			[]string{"announce CTRL_BREAK", "soft", "wait 3s"}},
		{"ignores the soft step", stopRecord{goneAfter: []bool{false, true}}, "TERMINATE", true, false,
			[]string{"announce CTRL_BREAK", "soft", "wait 3s", "announce TERMINATE", "hard", kill}},
		{"soft step undeliverable: no grace waited", stopRecord{softErr: errors.New("no console"), goneAfter: []bool{true}}, "TERMINATE", true, false,
			[]string{"announce CTRL_BREAK", "soft", "soft failed", "announce TERMINATE", "hard", kill}},
		{"survives the hard step", stopRecord{goneAfter: []bool{false, false}}, "TERMINATE", false, false,
			[]string{"announce CTRL_BREAK", "soft", "wait 3s", "announce TERMINATE", "hard", kill}},
		{"hard step fails", stopRecord{hardErr: errors.New("access denied"), goneAfter: []bool{false}}, "TERMINATE", false, true,
			[]string{"announce CTRL_BREAK", "soft", "wait 3s", "announce TERMINATE", "hard"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.rec
			sent, ok, err := r.steps().run(context.Background(), grace)
			if sent != c.wantSent || ok != c.wantOK || (err != nil) != c.wantErr {
				t.Errorf("run = %q, %v, %v; want %q, %v, error %v", sent, ok, err, c.wantSent, c.wantOK, c.wantErr)
			}
			if !slices.Equal(r.calls, c.wantCalls) {
				t.Errorf("calls = %q\nwant    %q", r.calls, c.wantCalls)
			}
		})
	}
}

// When the agent is stopping (ctx ends during the grace) the stop is
// finished with the hard step, whose wait is not cut short by ctx.
func TestStopSteps_CancelledDuringGraceStillTerminates(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := stopRecord{goneAfter: []bool{false, true}}
	st := r.steps()
	wait := st.WaitGone
	st.WaitGone = func(c context.Context, d time.Duration) bool {
		g := wait(c, d)
		cancel() // the agent stops during the first wait
		return g
	}
	sent, ok, err := st.run(ctx, time.Second)
	if sent != "TERMINATE" || !ok || err != nil {
		t.Fatalf("run = %q, %v, %v; want TERMINATE, true, nil", sent, ok, err)
	}
	if !slices.Equal(r.ctxAlive, []bool{true, true}) {
		t.Errorf("ctx alive at each wait = %v, want [true true] (the hard step's wait ignores the cancel)", r.ctxAlive)
	}
}
