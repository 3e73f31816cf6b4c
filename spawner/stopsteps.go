package spawner

import (
	"context"
	"time"
)

// stopSteps is how one platform ends a worker: ask it to go (soft), give
// it the grace, then force it (hard) and wait up to KillWait. On Windows
// soft is CTRL_BREAK and hard TerminateJobObject; keeping the sequence
// apart from the mechanism lets it be tested where the mechanism cannot
// show it (Wine delivers no console control events).
type stopSteps struct {
	soft, hard string // the names reported as StopResult.Signal
	// SendSoft and SendHard deliver the two steps. A SendSoft error means
	// the request could not be delivered: the hard step follows at once,
	// since nothing would use the grace.
	SendSoft, SendHard func() error
	// WaitGone waits up to d for every process of the worker to go and
	// reports whether they did.
	WaitGone func(ctx context.Context, d time.Duration) bool
	// OnSignal, when set, is told each step right before it is sent.
	OnSignal func(string)
	// OnSoftFailed, when set, hears why the soft step was not delivered.
	OnSoftFailed func(error)
}

// run sends the steps and returns the last one sent and whether everything
// went. When ctx ends during the grace (the agent is stopping), the hard
// step follows at once rather than the stop being left half done.
func (st stopSteps) run(ctx context.Context, grace time.Duration) (string, bool, error) {
	sent := st.soft
	if st.OnSignal != nil {
		st.OnSignal(sent)
	}
	if err := st.SendSoft(); err != nil {
		if st.OnSoftFailed != nil {
			st.OnSoftFailed(err)
		}
	} else if st.WaitGone(ctx, grace) {
		return sent, true, nil
	}
	ctx = context.WithoutCancel(ctx)
	sent = st.hard
	if st.OnSignal != nil {
		st.OnSignal(sent)
	}
	if err := st.SendHard(); err != nil {
		return sent, false, err
	}
	return sent, st.WaitGone(ctx, KillWait), nil
}
