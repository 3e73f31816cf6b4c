package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
)

func claimConn(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func claimCfg(t testing.TB, nc *nats.Conn, hive string, js bool, lease time.Duration) consumer.ClaimConfig {
	t.Helper()
	cfg := consumer.ClaimConfig{HiveID: hive, Host: "test-host", Version: "0.0.1", Lease: lease,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if js {
		j, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		cfg.JS = j
	}
	return cfg
}

// Two agents of one hive that claim it at the same instant: exactly one
// wins, every time, and the other's error names it. The winner's release
// lets the next round's pair claim at once (the lease is an hour). Seen
// before the claim: both served in 6 of 20 tries.
func TestClaim_SimultaneousStartersOneWins(t *testing.T) {
	for _, mode := range []struct {
		name string
		js   bool
	}{{"jetstream", true}, {"announcements only", false}} {
		t.Run(mode.name, func(t *testing.T) {
			var urls []string
			if mode.js {
				s := testenv.NATSWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
				urls = []string{s.ClientURL(), s.ClientURL()}
			} else {
				nodes := cluster(t) // the two starters on different nodes
				urls = []string{nodes[0].ClientURL(), nodes[1].ClientURL()}
			}
			hive := testenv.HiveID(t)
			conns := []*nats.Conn{claimConn(t, urls[0]), claimConn(t, urls[1])}
			prev, bothLost := "", 0
			for round := 0; round < 10; round++ {
				var wg sync.WaitGroup
				claims := make([]*consumer.Claim, 2)
				errs := make([]error, 2)
				gate := make(chan struct{})
				for i := range 2 {
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						defer cancel()
						cfg := claimCfg(t, conns[i], hive, mode.js, time.Hour)
						<-gate
						claims[i], errs[i] = consumer.AcquireClaim(ctx, conns[i], cfg)
					})
				}
				close(gate)
				wg.Wait()
				var won []int
				for i := range 2 {
					if errs[i] == nil {
						won = append(won, i)
					}
				}
				// Announcements only, under load: both starters may lose, to
				// each other or to a late announcement of the round before
				// (docs/nats.md); each exits 1 and is started again. Never
				// twice in a row, and never two winners.
				if len(won) == 0 && !mode.js && bothLost == 0 {
					bothLost++
					t.Logf("round %d: both starters lost (errors %v); running the round again", round, errs)
					round--
					continue
				}
				bothLost = 0
				if len(won) != 1 {
					t.Fatalf("round %d: %d claims won (errors %v), want exactly 1", round, len(won), errs)
				}
				w, l := won[0], 1-won[0]
				// The loser names the winner, or (announcements only) the
				// previous round's holder, whose last announcement may
				// still be on its way through the route after its release.
				names := strings.Contains(errs[l].Error(), claims[w].Holder()) ||
					(!mode.js && prev != "" && strings.Contains(errs[l].Error(), prev))
				if !errors.Is(errs[l], consumer.ErrClaimed) || !names {
					t.Fatalf("round %d: loser's error %v, want ErrClaimed naming %s", round, errs[l], claims[w].Holder())
				}
				prev = claims[w].Holder()
				claims[w].Release()
			}
		})
	}
}

// Twins that both serve (the first was cut off when the second started)
// find each other while running: exactly one is told to stop, naming the
// other. With JetStream the key's holder stays; with announcements only,
// the older claim.
func TestClaim_RunningTwinStops(t *testing.T) {
	for _, mode := range []struct {
		name string
		js   bool
	}{{"jetstream", true}, {"announcements only", false}} {
		t.Run(mode.name, func(t *testing.T) {
			opts := server.Options{}
			if mode.js {
				opts.JetStream, opts.StoreDir = true, t.TempDir()
			}
			s := natsServer(t, opts)
			p := newProxy(t, s.Addr().String())
			hive := testenv.HiveID(t)
			const lease = 2 * time.Second
			lost, back := make(chan struct{}, 1), make(chan struct{}, 1)
			first := claimConn(t, p.URL(), append(consumer.KeepAlive(500*time.Millisecond, 2),
				nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
				nats.DisconnectErrHandler(func(*nats.Conn, error) { lost <- struct{}{} }),
				nats.ReconnectHandler(func(*nats.Conn) { back <- struct{}{} }))...)
			second := claimConn(t, s.ClientURL())
			a, err := consumer.AcquireClaim(t.Context(), first, claimCfg(t, first, hive, mode.js, lease))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Release()
			// The first is cut off and stays so until the second serves.
			p.setRefuse(true)
			p.freeze()
			if _, err := within(lost, 30*time.Second); err != nil {
				t.Fatal("the first never noticed it was cut off")
			}
			var b *consumer.Claim
			for deadline := time.Now().Add(30 * time.Second); b == nil; {
				b, err = consumer.AcquireClaim(t.Context(), second, claimCfg(t, second, hive, mode.js, lease))
				if err != nil && time.Now().After(deadline) {
					t.Fatalf("the second never claimed the hive of the cut-off first: %v", err)
				}
			}
			defer b.Release()
			p.thaw()
			p.setRefuse(false)
			if _, err := within(back, 30*time.Second); err != nil {
				t.Fatal("the first never reconnected")
			}
			loser, winner := a, b
			if !mode.js {
				loser, winner = b, a
			}
			why, err := within(loser.Lost(), 30*time.Second)
			if err != nil {
				t.Fatalf("the twin that should stop (%s) was never told to", loser.Holder())
			}
			if !errors.Is(why, consumer.ErrClaimed) || !strings.Contains(why.Error(), winner.Holder()) {
				t.Errorf("lost: %v, want ErrClaimed naming %s", why, winner.Holder())
			}
			t.Logf("told to stop: %v", why)
			// The winner keeps its claim through two more renewals.
			select {
			case err := <-winner.Lost():
				t.Errorf("the winner was told to stop too: %v", err)
			case <-time.After(lease):
			}
		})
	}
}

// A claim whose holder was an agent of this boot of this machine that no
// longer runs (killed) is taken over at once, whatever its lease; one
// from another machine is waited out until its lease ends.
func TestClaim_DeadHolderOfThisHostTakenOver(t *testing.T) {
	s := testenv.NATSWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
	nc := claimConn(t, s.ClientURL())
	js, _ := jetstream.New(nc)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot id on this system")
	}
	put := func(t *testing.T, hive string, lease time.Duration, bootID string) {
		kv, err := js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: consumer.ClaimBucket, History: 1, TTL: lease})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := json.Marshal(map[string]any{"instance": "killed", "host": "h", "pid": dead.Process.Pid, "boot_id": bootID, "since": 1, "running": true, "key": true})
		if _, err := kv.Create(t.Context(), hive, v); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("this machine", func(t *testing.T) {
		hive := testenv.HiveID(t)
		put(t, hive, time.Hour, strings.TrimSpace(string(boot)))
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		c, err := consumer.AcquireClaim(ctx, nc, claimCfg(t, nc, hive, true, time.Hour))
		if err != nil {
			t.Fatalf("claim after a killed agent of this machine: %v, want it taken over", err)
		}
		c.Release()
	})
	t.Run("another machine", func(t *testing.T) {
		hive := testenv.HiveID(t)
		const lease = 2 * time.Second
		put(t, hive, lease, "another-boot")
		ctx, cancel := context.WithTimeout(t.Context(), lease/2)
		_, err := consumer.AcquireClaim(ctx, nc, claimCfg(t, nc, hive, true, lease))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("claim while another machine's lease runs: %v, want a wait (here cut short)", err)
		}
		ctx, cancel = context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		c, err := consumer.AcquireClaim(ctx, nc, claimCfg(t, nc, hive, true, lease))
		if err != nil {
			t.Fatalf("claim once the lease ran out: %v", err)
		}
		c.Release()
	})
}

// A renewal whose answer was lost (the agent reconnected in between) still
// moved the key on: the next renewal finds the key changed, by itself. The
// agent must keep its claim, not stop naming its own pid (seen after a
// 5 s server outage).
func TestClaim_OwnLostRenewalKeepsTheClaim(t *testing.T) {
	s := testenv.NATSWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
	nc := claimConn(t, s.ClientURL())
	hive := testenv.HiveID(t)
	const lease = 2 * time.Second
	c, err := consumer.AcquireClaim(t.Context(), nc, claimCfg(t, nc, hive, true, lease))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(t.Context(), consumer.ClaimBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(t.Context(), hive)
	if err != nil {
		t.Fatal(err)
	}
	// The agent's own body, written once more behind its back.
	bumped, err := kv.Update(t.Context(), hive, e.Value(), e.Revision())
	if err != nil {
		t.Fatal(err)
	}
	// Wait for a renewal on top of it.
	for deadline := time.Now().Add(5 * lease); ; {
		if e, err := kv.Get(t.Context(), hive); err == nil && e.Revision() > bumped {
			break
		}
		select {
		case err := <-c.Lost():
			t.Fatalf("claim lost after its own renewal: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never renewed its key again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-c.Lost():
		t.Fatalf("claim lost after its own renewal: %v", err)
	default:
	}
}
