package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rbee/hive-agent/subjects"
	"github.com/shirou/gopsutil/v4/process"
)

// ClaimBucket is the JetStream key-value bucket that holds one key per
// hive id: the agent that serves it, renewed while it runs.
const ClaimBucket = "HIVE_AGENTS"

// DefaultLease is how long a claim outlives its agent's last renewal; a
// killed agent blocks a successor on another host at most this long.
const DefaultLease = 10 * time.Second

// claimSettle is how long a starting agent announces its claim and listens
// for rivals before it serves.
const claimSettle = 600 * time.Millisecond

// ErrClaimed is wrapped by the errors that say another agent holds the hive.
var ErrClaimed = errors.New("hive already claimed")

// ClaimConfig configures AcquireClaim.
type ClaimConfig struct {
	HiveID  string
	Host    string
	Version string
	// JS, when set, makes the claim a key of ClaimBucket, created only when
	// absent; nil (or a server without JetStream) leaves the announcement
	// protocol alone.
	JS jetstream.JetStream
	// Lease is the key's lifetime without renewal; default DefaultLease.
	Lease  time.Duration
	Logger *slog.Logger
}

// claimant is what a claim says about its agent.
type claimant struct {
	Instance string `json:"instance"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	Version  string `json:"version"`
	BootID   string `json:"boot_id,omitempty"`
	// Since orders rivals: the earlier claim wins, then the lower instance.
	Since   int64 `json:"since"`
	Running bool  `json:"running"`
	// Key: it holds the hive's key in ClaimBucket.
	Key bool `json:"key,omitempty"`
	// Released: its agent stopped; earlier announcements of it are stale.
	Released bool `json:"released,omitempty"`
}

func (c claimant) String() string {
	return fmt.Sprintf("hive-agent %s on host %s (pid %d, instance %s)", c.Version, c.Host, c.PID, c.Instance)
}

// before reports whether c wins against o: a running agent against a
// starting one, else the holder of the key against an agent without it,
// else the earlier claim, else the lower instance id. Both
// sides compute the same answer from the same two announcements.
func (c claimant) before(o claimant) bool {
	if c.Running != o.Running {
		return c.Running
	}
	if c.Key != o.Key {
		return c.Key
	}
	if c.Since != o.Since {
		return c.Since < o.Since
	}
	return c.Instance < o.Instance
}

// Claim is an agent's hold on its hive id: announced on
// hive.<hive_id>.agent.claim (and answered whenever a rival announces),
// and, with JetStream, a key in ClaimBucket renewed every Lease/4.
type Claim struct {
	cfg  ClaimConfig
	nc   *nats.Conn
	log  *slog.Logger
	subj string
	sub  *nats.Subscription
	kv   jetstream.KeyValue // nil without JetStream

	// pub orders announcements: each is marshalled and published under
	// it, so none says Running after the one that says Released (an
	// answer to a rival, in flight while Release runs, did: a starter
	// that subscribed in between took the released agent for a running
	// one and lost to it).
	pub    sync.Mutex
	mu     sync.Mutex
	me     claimant
	rev    uint64
	rivals []claimant // seen while starting
	// released are instances that announced their release.
	released map[string]bool
	lost     chan error
	once     sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// Lost delivers one error when the claim was lost while running: a twin
// that wins the tie-break was found, or the key was taken after the lease
// ran out (this agent was frozen or cut off). The agent must then stop.
func (c *Claim) Lost() <-chan error { return c.lost }

// Holder describes this agent as its claim does.
func (c *Claim) Holder() string { c.mu.Lock(); defer c.mu.Unlock(); return c.me.String() }

// AcquireClaim claims cfg.HiveID for this agent, or fails with ErrClaimed
// naming the agent that holds it. Two agents that start at the same
// instant cannot both win: with JetStream only one key create succeeds;
// without it, each subscribes before it announces and answers every
// rival, so at least one sees the other and both apply the same
// tie-break. It waits out the lease of a silent holder (killed on
// another host); a holder on this host (same boot) whose process is gone
// is taken over at once.
func AcquireClaim(ctx context.Context, nc *nats.Conn, cfg ClaimConfig) (*Claim, error) {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	subj, err := subjects.AgentClaim(cfg.HiveID)
	if err != nil {
		return nil, err
	}
	c := &Claim{cfg: cfg, nc: nc, log: cfg.Logger, subj: subj,
		lost: make(chan error, 1), stop: make(chan struct{}), done: make(chan struct{}), released: map[string]bool{}}
	c.me = claimant{Instance: uuid.NewString(), Host: cfg.Host, PID: os.Getpid(), Version: cfg.Version,
		BootID: bootID(), Since: time.Now().UnixNano()}
	sub, err := nc.Subscribe(c.subj, c.heard)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", c.subj, err)
	}
	c.sub = sub
	fail := func(err error) (*Claim, error) { sub.Unsubscribe(); return nil, err }
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return fail(fmt.Errorf("subscribe %s: %w", c.subj, err))
	}
	// Announce three times while listening: interest travels a cluster's
	// routes in a moment, not at once.
	for i := range 3 {
		c.announce()
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(claimSettle / 3):
		}
		if i == 0 && cfg.JS != nil {
			if err := c.createKey(ctx); err != nil {
				return fail(err)
			}
		}
	}
	c.mu.Lock()
	var winner *claimant
	for _, r := range c.rivals {
		// The key's holder yields only to a running agent: a starter
		// without the key cannot serve.
		if c.kv != nil && !r.Running {
			continue
		}
		if r.before(c.me) && (winner == nil || r.before(*winner)) {
			winner = &r
		}
	}
	if winner != nil {
		// Withdrawn, so that a starter that hears this one's last
		// announcements late (a busy route) does not lose to it: seen in
		// a test, two starters of the next round both lost, one of them
		// to the previous round's loser.
		c.me.Released = true
		c.mu.Unlock()
		c.releaseKey()
		c.announce()
		return fail(fmt.Errorf("%w: another agent already serves hive %s: %s; stop it, or give this one another --hive-id", ErrClaimed, cfg.HiveID, winner))
	}
	c.me.Running, c.rivals = true, nil
	c.mu.Unlock()
	c.announce() // rivals still starting learn that they lost
	go c.renew()
	return c, nil
}

// heard handles another agent's announcement.
func (c *Claim) heard(m *nats.Msg) {
	var o claimant
	if json.Unmarshal(m.Data, &o) != nil {
		return
	}
	c.mu.Lock()
	if o.Instance == c.me.Instance || c.released[o.Instance] {
		c.mu.Unlock()
		return
	}
	if o.Released {
		c.released[o.Instance] = true
		c.rivals = slices.DeleteFunc(c.rivals, func(r claimant) bool { return r.Instance == o.Instance })
		c.mu.Unlock()
		return
	}
	me := c.me
	if !me.Running {
		c.rivals = append(c.rivals, o)
	}
	c.mu.Unlock()
	switch {
	case me.Running && o.before(me) && c.holdsKey():
		// The key decides: the rival loses it at its next renewal.
		c.announce()
	case me.Running && o.before(me):
		c.lose(fmt.Errorf("%w: another agent also serves hive %s: %s, and it claimed the hive first; this one (%s) stops",
			ErrClaimed, c.cfg.HiveID, o, me))
	case me.before(o) && !o.Running:
		c.announce() // answer a starter, so it learns it lost
	case me.before(o):
		c.log.Warn("another agent also serves this hive; it will stop, this one keeps serving", "other", o.String())
		c.announce()
	}
}

func (c *Claim) lose(err error) {
	c.once.Do(func() { c.lost <- err })
}

func (c *Claim) announce() {
	c.pub.Lock()
	defer c.pub.Unlock()
	c.mu.Lock()
	body, _ := json.Marshal(c.me)
	c.mu.Unlock()
	if err := c.nc.Publish(c.subj, body); err != nil {
		c.log.Warn("announce the hive claim", "subject", c.subj, "err", err)
	}
}

// Release gives the claim up: no more announcements, and the key deleted
// if it is still this agent's, so a successor starts at once.
func (c *Claim) Release() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	c.sub.Unsubscribe()
	c.releaseKey()
	c.mu.Lock()
	c.me.Released, c.me.Running = true, false
	c.mu.Unlock()
	c.announce()
}

// renew announces the claim and renews its key every Lease/4 until Release.
func (c *Claim) renew() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.announce()
		if c.kv != nil {
			c.renewKey()
		}
	}
}

// bootID identifies this boot of this machine (Linux); "" elsewhere.
// Cloned machines share host names, even machine ids, never boot ids.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// gone reports whether o is an agent of this boot of this machine whose
// process no longer runs.
func gone(o claimant) bool {
	if o.BootID == "" || o.BootID != bootID() || o.PID <= 0 {
		return false
	}
	exists, err := process.PidExists(int32(o.PID))
	return err == nil && !exists
}
