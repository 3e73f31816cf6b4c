package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// storeAckTimeout bounds the wait for one stored-acknowledgement; a
// publish lost with a connection is retried (intake) or published again
// after the reconnect (the outbox).
const storeAckTimeout = 10 * time.Second

// jobStore publishes results into HIVE_JOBS and reads back what it holds.
type jobStore struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	log    *slog.Logger
}

var _ storer = (*jobStore)(nil)

// prepare gives msg its Nats-Msg-Id, so that a copy published again after
// a reconnect is not stored twice.
func (s *jobStore) prepare(msg *nats.Msg) { msgID(msg) }

// publishAsync publishes a copy of msg with its Nats-Msg-Id (prepare) and
// reports on stored whether HIVE_JOBS acknowledged it. msg itself is left
// as it is: the outbox keeps it, a reconnect may publish it again
// meanwhile, and JetStream's publish options write into the header.
func (s *jobStore) publishAsync(msg *nats.Msg) (<-chan bool, error) {
	msg = &nats.Msg{Subject: msg.Subject, Data: msg.Data, Header: maps.Clone(msg.Header)}
	id := msgID(msg)
	if p := s.prefix(); p != "" {
		// Fleet layout: live listeners get it here, the domain's stream
		// stores the copy.
		if err := s.js.Conn().PublishMsg(msg); err != nil {
			return nil, err
		}
		msg = storedCopy(msg, p)
	}
	f, err := s.js.PublishMsgAsync(msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(JobsStream))
	if err != nil {
		return nil, err
	}
	stored := make(chan bool, 1)
	go func() {
		t := time.NewTimer(storeAckTimeout)
		defer t.Stop()
		select {
		case <-f.Ok():
			stored <- true
		case err := <-f.Err():
			s.log.Warn("result not stored in "+JobsStream, "subject", msg.Subject, "err", err)
			stored <- false
		case <-t.C:
			stored <- false
		}
	}()
	return stored, nil
}

// storeAttempts bounds the attempts to store one result while the
// connection is up: a HIVE_JOBS that keeps refusing it (full with discard
// new, a limit, a failing server) must not hold its command, and with it
// the intake, forever. Attempts while disconnected do not count.
const storeAttempts = 5

// errNotStored marks a result HIVE_JOBS kept refusing for storeAttempts attempts.
var errNotStored = errors.New("HIVE_JOBS kept refusing the result")

// store publishes msg until HIVE_JOBS acknowledged it, across reconnects;
// it gives up when ctx ends or after storeAttempts refusals while
// connected (an error wrapping errNotStored and the last refusal).
func (s *jobStore) store(ctx context.Context, msg *nats.Msg) error {
	id := msgID(msg)
	if p := s.prefix(); p != "" {
		// Fleet layout: published once for live listeners (a listener
		// that misses it reads the stored copy), stored through the copy.
		if err := s.js.Conn().PublishMsg(msg); err != nil {
			s.log.Warn("publish result", "subject", msg.Subject, "err", err)
		}
		msg = storedCopy(msg, p)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, 0
	attempt, refused := 0, 0
	return backoff.RetryNotify(func() error {
		attempt++
		actx, cancel := context.WithTimeout(ctx, storeAckTimeout)
		defer cancel()
		_, err := s.js.PublishMsg(actx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(JobsStream))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return backoff.Permanent(fmt.Errorf("store %s: %w", msg.Subject, ctx.Err()))
		}
		if s.js.Conn().IsConnected() {
			if refused++; refused >= storeAttempts {
				return backoff.Permanent(fmt.Errorf("%w after %d attempts: %w", errNotStored, refused, err))
			}
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		s.log.Warn("storing the result in "+JobsStream+" failed; retrying", "subject", msg.Subject, "attempt", attempt, "next_in", next.Round(time.Millisecond), "err", err)
	})
}

// prefix is what goes before a job subject to have it stored (fleet.go).
func (s *jobStore) prefix() string { return storePrefix(s.stream.CachedInfo().Config) }

// mirror publishes, in the fleet layout, the copy of a plainly published
// message (narration, a result published again) that the domain's
// HIVE_JOBS stores; without a domain the stream captured it already.
func (s *jobStore) mirror(msg *nats.Msg) {
	if p := s.prefix(); p != "" {
		if err := s.js.Conn().PublishMsg(storedCopy(msg, p)); err != nil {
			s.log.Warn("publish stored copy", "subject", p+msg.Subject, "err", err)
		}
	}
}

// msgID is the message's Nats-Msg-Id, set once so retries share it.
func msgID(msg *nats.Msg) string {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	id := msg.Header.Get(jetstream.MsgIDHeader)
	if id == "" {
		id = "result-" + uuid.NewString()
		msg.Header.Set(jetstream.MsgIDHeader, id)
	}
	return id
}

// storedResult returns the last stored result of job if it is the one of
// commandID, or nil.
func (s *jobStore) storedResult(ctx context.Context, jobID, commandID string) ([]byte, error) {
	subj, err := subjects.JobResult(jobID)
	if err != nil {
		return nil, err
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", subj, JobsStream, err)
	}
	var r wire.Reply[json.RawMessage]
	if json.Unmarshal(m.Data, &r) != nil || r.CommandID != commandID {
		return nil, nil
	}
	return m.Data, nil
}

// lastSeq is the seq of the job's last stored narration event, 0 when none.
func (s *jobStore) lastSeq(ctx context.Context, jobID string) uint64 {
	subj, err := subjects.JobNarration(jobID)
	if err != nil {
		return 0
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return 0
	}
	var e wire.Event
	json.Unmarshal(m.Data, &e)
	return e.Seq
}
