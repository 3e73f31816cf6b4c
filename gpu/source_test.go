package gpu

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rbee/hive-agent/internal/fakesmi"
)

func fakeState(t *testing.T, n int) fakesmi.State {
	t.Helper()
	gs, err := fakesmi.FromQueryCSV(fixture(t, "nvidia-smi-query.csv"), n)
	if err != nil {
		t.Fatal(err)
	}
	return fakesmi.State{GPUs: gs}
}

func TestSource_ReadsFakeAndCaches(t *testing.T) {
	st := fakeState(t, 2)
	st.Apps = []fakesmi.App{{PID: 4242, GPUUUID: st.GPUs[1].UUID, UsedMiB: 30210}}
	f := fakesmi.Install(t, st)
	src := NewSource(SourceConfig{Command: filepath.Join(f.Dir, "nvidia-smi"), TTL: time.Hour})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			snap, err := src.Snapshot(context.Background())
			if err != nil {
				t.Errorf("Snapshot: %v", err)
				return
			}
			if len(snap.GPUs) != 2 || snap.GPUs[1].MemoryUsedMiB != 30210 || snap.GPUs[1].MemoryFreeMiB != 81559-30210 {
				t.Errorf("GPUs = %+v", snap.GPUs)
			}
			if apps := snap.AppsOn(st.GPUs[1].UUID); len(apps) != 1 || apps[0].PID != 4242 {
				t.Errorf("apps on GPU 1 = %+v", apps)
			}
		})
	}
	wg.Wait()
	if got := len(f.Calls(t)); got != 2 {
		t.Errorf("20 callers ran nvidia-smi %d times, want 2 (one query of each kind)", got)
	}
	if _, err := src.Fresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(f.Calls(t)); got != 4 {
		t.Errorf("after Fresh: %d calls, want 4", got)
	}
}

// A hung nvidia-smi whose child (in a session of its own) holds the output
// pipe: each run still ends within its bound.
func TestSource_HungWithChildHoldingPipe(t *testing.T) {
	for _, hang := range []string{fakesmi.HangSleep, fakesmi.HangChild} {
		t.Run(hang, func(t *testing.T) {
			st := fakeState(t, 1)
			st.Hang = hang
			f := fakesmi.Install(t, st)
			src := NewSource(SourceConfig{Command: filepath.Join(f.Dir, "nvidia-smi"), Timeout: 500 * time.Millisecond})
			done := make(chan error, 1)
			go func() {
				_, err := src.Snapshot(context.Background())
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("Snapshot error = %v, want ErrTimeout", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Snapshot did not return within a minute of a 500ms bound")
			}
			if hang == fakesmi.HangChild && len(f.Held(t)) == 0 {
				t.Error("the fake left no child holding the pipe: the test tests nothing")
			}
			// The failure is cached: no second wait.
			if _, err := src.Snapshot(context.Background()); !errors.Is(err, ErrTimeout) {
				t.Errorf("cached error = %v", err)
			}
			if n := src.Rounds(); n != 1 {
				t.Errorf("rounds = %d, want 1", n)
			}
		})
	}
}

func TestSource_NoNvidiaSMI(t *testing.T) {
	src := NewSource(SourceConfig{Command: filepath.Join(t.TempDir(), "nvidia-smi")})
	if _, err := src.Snapshot(context.Background()); !errors.Is(err, ErrNoNvidiaSMI) {
		t.Errorf("err = %v, want ErrNoNvidiaSMI", err)
	}
}
