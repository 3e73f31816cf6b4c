package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rbee/hive-agent/internal/testenv"
)

// Two agents of one hive started at the same instant: exactly one serves,
// the other exits 1 naming it; the winner's graceful stop releases the
// claim, so the next pair starts at once. With JetStream and without.
// Seen before the claim: both served in 6 of 20 tries.
func TestAgent_TwinsStartedTogetherOneServes(t *testing.T) {
	for _, mode := range []struct {
		name string
		js   bool
	}{{"jetstream", true}, {"jetstream off", false}} {
		t.Run(mode.name, func(t *testing.T) {
			opts := &server.Options{}
			args := []string{"--jetstream", "off"}
			if mode.js {
				opts.JetStream, opts.StoreDir = true, t.TempDir()
				args = []string{"--jetstream", "on"}
			}
			s := testenv.NATSWith(t, opts)
			// An agent of another hive on the system: the one-agent check
			// then waits for answers, which widened the race before the claim.
			bystander := startBinary(t, t.TempDir(), append([]string{"--hive-id", newHive(t), "--nats-url", s.ClientURL()}, args...)...)
			bystander.waitLog(t, "serving worker commands")
			hive := newHive(t)
			for round := range 4 {
				logDir := t.TempDir()
				var twins [2]*proc
				for i := range twins {
					twins[i] = startBinary(t, logDir, append([]string{"--hive-id", hive, "--nats-url", s.ClientURL()}, args...)...)
				}
				// The loser exits 1 within its claim's settling; the winner serves.
				loser, winner := -1, -1
				for deadline := time.Now().Add(60 * time.Second); loser < 0; {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: both agents still run 60 s after they started; outputs:\n%s\n%s", round, twins[0].out.String(), twins[1].out.String())
					}
					for i, p := range twins {
						select {
						case <-p.exited:
							if code := p.cmd.ProcessState.ExitCode(); code != 1 {
								t.Fatalf("round %d: agent %d exited %d, want 1 (or serving); output:\n%s", round, i, code, p.out.String())
							}
							loser, winner = i, 1-i
						default:
						}
					}
					time.Sleep(10 * time.Millisecond)
				}
				twins[winner].waitLog(t, "serving worker commands")
				if mode.js {
					// A stop while the intake still starts exits 1 (not this test's concern).
					twins[winner].waitLog(t, "taking durable intake commands")
				}
				if out := twins[loser].out.String(); !strings.Contains(out, "another agent already serves hive "+hive) ||
					strings.Contains(out, "serving worker commands") {
					t.Fatalf("round %d: the loser served, or did not name the winner:\n%s", round, out)
				}
				nc := testenv.Connect(t, s)
				listPIDs(t, nc, hive) // the winner answers
				nc.Close()
				if err := twins[winner].stop(t, syscall.SIGTERM); err != nil {
					t.Fatalf("round %d: the winner's stop: %v, want exit 0", round, err)
				}
			}
		})
	}
}
