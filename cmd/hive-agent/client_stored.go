package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/consumer"
)

// jobCmd is `hive-agent job`: a job's stored narration and result, read
// from the HIVE_JOBS stream, so a caller that was away learns the outcome.
type jobCmd struct {
	JobID       string `arg:"" name:"job_id" help:"The job id (as sent, or as a reply or narration named it)."`
	Follow      bool   `name:"follow" short:"f" help:"Wait for the result when the job has none yet (a command still queued or running)."`
	domainFlag  `embed:""`
	clientFlags `embed:""`
}

func (j *jobCmd) check() error {
	if err := checkDomain(j.JetStreamDomain); err != nil {
		return usagef("%v", err)
	}
	return checkToken("job_id", j.JobID)
}

func (j *jobCmd) run(ctx context.Context, o *output, c *client.Client) error {
	var res client.Reply[json.RawMessage]
	if j.Follow {
		if j.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, j.Timeout)
			defer cancel()
		}
		r, err := c.WatchJob(ctx, j.JobID, o.event)
		if err != nil {
			var ae *client.AgentError
			if !errors.As(err, &ae) {
				return storedErr(o, j.JobID, err)
			}
		}
		res = r
	} else {
		events, r, err := c.StoredJob(ctx, j.JobID)
		if errors.Is(err, client.ErrJobNotStored) {
			if q, ok := findQueued(ctx, c.Conn(), j.JobID); ok {
				o.warnf("job %s is still queued in the intake (%s, %s sequence %d): no agent has taken it yet; hive-agent job %s -f waits for its result",
					j.JobID, q.Subject, consumer.IntakeStream, q.Seq, j.JobID)
				return exitError{exitNoAgent}
			}
		}
		if err != nil {
			return storedErr(o, j.JobID, err)
		}
		for _, e := range events {
			o.event(e)
		}
		if r == nil {
			o.warnf("job %s has no result yet; hive-agent job %s -f waits for it", j.JobID, j.JobID)
			return exitError{exitNoAgent}
		}
		res = *r
	}
	if j.JSON {
		if err := o.json(res); err != nil {
			return err
		}
	} else if err := o.fields("job", res.JobID, "kind", res.Kind, "hive", res.HiveID, "command", res.CommandID,
		"ok", fmt.Sprint(res.OK), "result", string(res.Result)); err != nil {
		return err
	}
	if res.Error != nil {
		return res.Error
	}
	return nil
}

// storedErr says what is missing when a job cannot be read back; nothing
// stored is exit 3, like no agent answering: the outcome is not there.
func storedErr(o *output, jobID string, err error) error {
	switch {
	case errors.Is(err, client.ErrJobNotStored):
		o.errorf("job %s: nothing stored (unknown, older than the %s stream's max age, or the agent stores no outcomes: see docs/intake.md)", jobID, consumer.JobsStream)
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, nats.ErrNoResponders): // no JetStream answers at all
		o.errorf("job %s: this NATS system stores no job outcomes (no JetStream, or no %s stream): %v", jobID, consumer.JobsStream, err)
	default:
		return err
	}
	return exitError{exitNoAgent}
}

// setupCmd is `hive-agent setup`: creates the JetStream streams of durable
// intake and stored outcomes ahead of time (and, with --hive, that hive's
// consumer), so automation can queue commands for a hive that never ran.
type setupCmd struct {
	Hive        string        `name:"hive" short:"H" env:"HIVE_ID" help:"Also create this hive's intake consumer."`
	JobsMaxAge  time.Duration `name:"jobs-max-age" default:"24h" help:"How long HIVE_JOBS keeps narration and results."`
	AckWait     time.Duration `name:"intake-ack-wait" default:"30s" help:"The intake consumer's ack wait."`
	Replicas    int           `name:"replicas" default:"1" help:"Replicas of each stream (3 on a JetStream cluster that must survive the loss of a server)."`
	domainFlag  `embed:""`
	clientFlags `embed:""`
}

func (s *setupCmd) check() error {
	if err := checkDomain(s.JetStreamDomain); err != nil {
		return usagef("%v", err)
	}
	if s.Hive != "" {
		return checkToken("--hive", s.Hive)
	}
	return nil
}

func (s *setupCmd) run(ctx context.Context, o *output, c *client.Client) error {
	js, err := newJetStream(c.Conn(), s.JetStreamDomain)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	rep, err := consumer.SetupStreams(ctx, js, s.Hive, consumer.StreamsConfig{
		JobsMaxAge: s.JobsMaxAge, AckWait: s.AckWait, Replicas: s.Replicas}, true)
	for _, w := range rep.Warnings {
		o.warnf("%s", w)
	}
	if err != nil {
		if errors.Is(err, consumer.ErrNoJetStream) {
			o.errorf("%v: this NATS server has no JetStream, so there is nothing to set up", err)
			return exitError{exitNoAgent}
		}
		return err
	}
	if s.JSON {
		return o.json(rep)
	}
	return o.fields("domain", rep.Domain, "created", strings.Join(rep.Created, ", "), "existing", strings.Join(rep.Existing, ", "))
}

// domainFlag is --jetstream-domain for the client commands that read or
// make streams: the JetStream domain whose streams they use.
type domainFlag struct {
	JetStreamDomain string `name:"jetstream-domain" env:"HIVE_JETSTREAM_DOMAIN" help:"JetStream domain whose streams to use (a leaf node's; docs/topology.md); empty: the server's."`
}

func (f *domainFlag) domain() string { return f.JetStreamDomain }

// newJetStream is a JetStream context in domain d ("" the server's own).
func newJetStream(nc *nats.Conn, d string) (jetstream.JetStream, error) {
	if d == "" {
		return jetstream.New(nc)
	}
	return jetstream.NewWithDomain(nc, d)
}
