package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// kvTimeout bounds each JetStream call of the claim.
const kvTimeout = 5 * time.Second

// claimPoll is how often a starter waiting for a silent holder's lease
// looks again (and whether the holder answered meanwhile).
const claimPoll = 200 * time.Millisecond

// bucket opens ClaimBucket, creating it when missing: one key per hive,
// history 1, each value living Lease after its last write.
func (c *Claim) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	kv, err := c.cfg.JS.KeyValue(ctx, ClaimBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = c.cfg.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ClaimBucket, History: 1, TTL: c.cfg.Lease,
			Description: "hive-agent: the agent that serves each hive id, renewed while it runs"})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = c.cfg.JS.KeyValue(ctx, ClaimBucket)
		}
	}
	return kv, err
}

// createKey claims the hive's key: created when absent; taken over when
// its holder was an agent of this boot of this machine that no longer
// runs; waited for while a silent holder's lease runs out. Without
// JetStream (or without the rights to the bucket) it leaves the claim to
// the announcements and says so.
func (c *Claim) createKey(ctx context.Context) error {
	kv, err := c.bucket(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Info("the one-agent claim uses announcements only: no JetStream key-value bucket "+ClaimBucket, "err", err)
		return nil
	}
	key := c.cfg.HiveID
	deadline := time.Now().Add(c.cfg.Lease + c.cfg.Lease/2)
	waiting, polls := false, 0
	for {
		body := c.body()
		cctx, cancel := context.WithTimeout(ctx, kvTimeout)
		rev, err := kv.Create(cctx, key, body)
		if err == nil {
			cancel()
			c.setKey(kv, rev)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// E.g. no rights to the bucket's subjects: the announcements
			// still keep a second agent out, without the atomic create.
			c.log.Warn("the one-agent claim uses announcements only: cannot create the hive's key in "+ClaimBucket, "err", err)
			return nil
		}
		e, gerr := kv.Get(cctx, key)
		cancel()
		if gerr != nil {
			continue // gone or expired meanwhile: create again
		}
		var o claimant
		json.Unmarshal(e.Value(), &o)
		if c.isMe(o) { // a create that went through though its answer was lost
			c.setKey(kv, e.Revision())
			return nil
		}
		if gone(o) {
			cctx, cancel := context.WithTimeout(ctx, kvTimeout)
			rev, err := kv.Update(cctx, key, body, e.Revision())
			cancel()
			if err == nil {
				c.log.Info("took over the hive claim of an agent of this machine that no longer runs", "previous", o.String())
				c.setKey(kv, rev)
				return nil
			}
			continue
		}
		if c.heardRunning(o.Instance) || time.Now().After(deadline) {
			return fmt.Errorf("%w: another agent already serves hive %s: %s (its claim in bucket %s is renewed); stop it, or give this one another --hive-id",
				ErrClaimed, key, o, ClaimBucket)
		}
		if polls++; !waiting && polls > 5 && !c.announced(o.Instance) {
			waiting = true
			c.log.Warn("hive already claimed by an agent that does not answer; waiting for its lease to run out", "holder", o.String(), "lease", c.cfg.Lease)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(claimPoll):
		}
	}
}

func (c *Claim) setKey(kv jetstream.KeyValue, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kv, c.rev, c.me.Key = kv, rev, true
}

func (c *Claim) body() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, _ := json.Marshal(c.me)
	return b
}

// heardRunning reports whether instance announced itself as running.
func (c *Claim) heardRunning(instance string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.rivals {
		if r.Instance == instance && r.Running {
			return true
		}
	}
	return false
}

// announced reports whether instance announced itself at all.
func (c *Claim) announced(instance string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.rivals, func(r claimant) bool { return r.Instance == instance })
}

// holdsKey reports whether this agent holds the hive's key.
func (c *Claim) holdsKey() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.kv != nil }

// renewKey writes the key again, on its last revision. When that fails
// because the key changed, the lease ran out while this agent was frozen
// or cut off: it claims the key again if nobody did, or loses the claim.
func (c *Claim) renewKey() {
	c.mu.Lock()
	kv, rev := c.kv, c.rev
	c.mu.Unlock()
	key, body := c.cfg.HiveID, c.body()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Lease/4)
	defer cancel()
	nrev, err := kv.Update(ctx, key, body, rev)
	if err == nil {
		c.setKey(kv, nrev)
		return
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		c.log.Warn("renew the hive claim; it lapses after the lease unless a renewal gets through", "lease", c.cfg.Lease, "err", err)
		return
	}
	if nrev, err = kv.Create(ctx, key, body); err == nil {
		c.log.Warn("the hive claim had run out (this agent was cut off longer than the lease); claimed again", "lease", c.cfg.Lease)
		c.setKey(kv, nrev)
		return
	}
	holder := "an unknown agent"
	// A time of its own: under load the update and the create may have
	// used up the renewal's, and the message should name the winner.
	gctx, gcancel := context.WithTimeout(context.Background(), c.cfg.Lease/4)
	defer gcancel()
	if e, gerr := kv.Get(gctx, key); gerr == nil {
		var o claimant
		if json.Unmarshal(e.Value(), &o) == nil {
			if c.isMe(o) {
				// An earlier renewal went through though its answer was
				// lost (a reconnect in between): the key is still ours.
				c.setKey(kv, e.Revision())
				return
			}
			holder = o.String()
		}
	}
	c.lose(fmt.Errorf("%w: hive %s was claimed by %s after this agent's claim ran out (frozen or cut off for over %s); this one stops",
		ErrClaimed, key, holder, c.cfg.Lease))
}

// releaseKey deletes the key if it is still this agent's.
func (c *Claim) releaseKey() {
	c.mu.Lock()
	kv, rev := c.kv, c.rev
	c.kv, c.me.Key = nil, false
	c.mu.Unlock()
	if kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	if err := kv.Delete(ctx, c.cfg.HiveID, jetstream.LastRevision(rev)); err != nil {
		c.log.Warn("release the hive claim; it lapses after the lease", "lease", c.cfg.Lease, "err", err)
	}
}

// isMe reports whether o is this agent's own claim.
func (c *Claim) isMe(o claimant) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return o.Instance != "" && o.Instance == c.me.Instance
}
