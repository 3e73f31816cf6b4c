package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/subjects"
)

// JobsStream is the JetStream stream where agents store narration and
// results (job.>), when the NATS system has JetStream.
const JobsStream = "HIVE_JOBS"

// ErrJobNotStored means HIVE_JOBS holds nothing of the job: an unknown or
// expired job id, a command still queued in the intake, or an agent
// running without JetStream.
var ErrJobNotStored = errors.New("job not stored")

// StoredJob reads what HIVE_JOBS holds of job jobID: its narration events
// in order, and its last result (nil while the job has none). A stored
// result that says ok:false is returned as a result, not as err.
func (c *Client) StoredJob(ctx context.Context, jobID string) (events []Event, result *Reply[json.RawMessage], err error) {
	narr, res, err := jobSubjects(jobID)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := bound(ctx, c.timeout)
	defer cancel()
	js, err := c.jetStream()
	if err != nil {
		return nil, nil, err
	}
	stream, err := js.Stream(ctx, JobsStream)
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", JobsStream, err)
	}
	if m, err := stream.GetLastMsgForSubject(ctx, res); err == nil {
		var r Reply[json.RawMessage]
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return nil, nil, fmt.Errorf("%s: stored result is not a hive-agent result: %w", res, err)
		}
		result = &r
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil, fmt.Errorf("read %s: %w", res, err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{narr}})
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", narr, err)
	}
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchContext(ctx))
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", narr, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var e Event
			if json.Unmarshal(m.Data(), &e) == nil {
				events = append(events, e)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", narr, err)
		}
		if n == 0 {
			break
		}
		pending -= uint64(n)
	}
	if len(events) == 0 && result == nil {
		return nil, nil, fmt.Errorf("%w: %s has nothing on job.%s.>", ErrJobNotStored, JobsStream, jobID)
	}
	return events, result, nil
}

// WatchJob follows job jobID until it has a result: it hands the stored
// narration to onEvent (may be nil), then the live one as it comes, and
// returns the result, stored or live. It suits a command sent to the
// durable intake, which may run long after it was sent. An ok:false
// result comes back with its *AgentError. Without a deadline in ctx it
// waits up to DefaultReadyTimeout.
func (c *Client) WatchJob(ctx context.Context, jobID string, onEvent func(Event)) (Reply[json.RawMessage], error) {
	var zero Reply[json.RawMessage]
	narr, res, err := jobSubjects(jobID)
	if err != nil {
		return zero, err
	}
	ctx, cancel := bound(ctx, max(c.timeout, DefaultReadyTimeout))
	defer cancel()
	js, err := c.jetStream()
	if err != nil {
		return zero, err
	}
	// One ordered consumer over both subjects replays what is stored, then
	// goes on live, in the order the agent published.
	cons, err := js.OrderedConsumer(ctx, JobsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{narr, res}})
	if err != nil {
		return zero, fmt.Errorf("follow job %s in %s: %w", jobID, JobsStream, err)
	}
	for {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return zero, fmt.Errorf("job %s: no result yet: %w", jobID, context.Cause(ctx))
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return zero, fmt.Errorf("follow job %s: %w", jobID, err)
		}
		if m.Subject() == res {
			return decodeReply[json.RawMessage](res, m.Data())
		}
		var e Event
		if onEvent != nil && json.Unmarshal(m.Data(), &e) == nil {
			onEvent(e)
		}
	}
}

func jobSubjects(jobID string) (narr, res string, err error) {
	if narr, err = subjects.JobNarration(jobID); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	res, _ = subjects.JobResult(jobID)
	return narr, res, nil
}

// jetStream is a JetStream context in the client's domain (WithJetStreamDomain).
func (c *Client) jetStream() (jetstream.JetStream, error) {
	if c.domain == "" {
		return jetstream.New(c.nc)
	}
	return jetstream.NewWithDomain(c.nc, c.domain)
}
