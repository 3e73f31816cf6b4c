package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/subjects"
)

// Names of the JetStream streams behind durable intake and stored outcomes.
const (
	// IntakeStream stores the commands published to hive.<hive_id>.intake.>
	// until the hive's agent has stored their result.
	IntakeStream = "HIVE_INTAKE"
	// JobsStream stores what is published on job.> (narration and results).
	JobsStream = "HIVE_JOBS"
	// EventsStream stores every hive's events, hive.*.events.> (events_stream.go).
	EventsStream = "HIVE_EVENTS"
)

// Defaults of StreamsConfig.
const (
	DefaultJobsMaxAge      = 24 * time.Hour
	DefaultIntakeAckWait   = 30 * time.Second
	DefaultDuplicateWindow = 2 * time.Minute
	// DefaultIntakeMaxAckPending bounds the intake commands one agent holds
	// unacknowledged (queued behind their worker's earlier commands or running).
	DefaultIntakeMaxAckPending = 1000
)

// StreamsConfig is how the streams and the intake consumer are created.
// An existing stream or consumer is never changed: conflicts are reported.
type StreamsConfig struct {
	// JobsMaxAge is how long HIVE_JOBS keeps narration and results (24 h).
	JobsMaxAge time.Duration
	// AckWait is how long a delivered intake command may go without an
	// acknowledgement or an in-progress signal before it is delivered again (30 s).
	AckWait time.Duration
	// DuplicateWindow is how long both streams remember Nats-Msg-Id (2 min).
	DuplicateWindow time.Duration
	// Replicas of each stream (1); 3 on a JetStream cluster that must
	// survive the loss of a server.
	Replicas int
	// EventsMaxAge is how long HIVE_EVENTS keeps events (24 h).
	EventsMaxAge time.Duration
}

func (c *StreamsConfig) setDefaults() {
	if c.JobsMaxAge == 0 {
		c.JobsMaxAge = DefaultJobsMaxAge
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultIntakeAckWait
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = min(DefaultDuplicateWindow, c.JobsMaxAge)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
}

// Validate reports every problem with the configuration.
func (c *StreamsConfig) Validate() error {
	var errs []error
	if c.JobsMaxAge < time.Second {
		errs = append(errs, fmt.Errorf("jobs max age %s: want at least 1s", c.JobsMaxAge))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("intake ack wait %s: want at least 1s", c.AckWait))
	}
	if c.DuplicateWindow <= 0 || c.DuplicateWindow > c.JobsMaxAge {
		errs = append(errs, fmt.Errorf("duplicate window %s: want more than 0 and at most the jobs max age %s", c.DuplicateWindow, c.JobsMaxAge))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: want 1-5", c.Replicas))
	}
	return errors.Join(errs...)
}

func (c StreamsConfig) intake() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        IntakeStream,
		Description: "hive-agent durable intake: worker commands kept until their agent stored the result",
		Subjects:    []string{subjects.AllIntake},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  c.DuplicateWindow,
		Replicas:    c.Replicas,
	}
}

func (c StreamsConfig) jobs() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        JobsStream,
		Description: "hive-agent job outcomes: narration and results of every command",
		Subjects:    []string{subjects.AllJobs},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.JobsMaxAge,
		Duplicates:  c.DuplicateWindow,
		Replicas:    c.Replicas,
	}
}

// ConsumerName is the durable intake consumer of a hive: hive-agent-<hive_id>.
func ConsumerName(hiveID string) string { return "hive-agent-" + hiveID }

// intakeFilter is hive.<hive>.intake.>, the subjects of one hive's intake.
func intakeFilter(hiveID string) (string, error) {
	return subjects.Intake(hiveID)
}

func (c StreamsConfig) consumer(hiveID string) (jetstream.ConsumerConfig, error) {
	filter, err := intakeFilter(hiveID)
	if err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(hiveID),
		Description:   "hive-agent of hive " + hiveID + ": durable intake",
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
		MaxAckPending: DefaultIntakeMaxAckPending,
	}, nil
}

// SetupReport says what SetupStreams found and did.
type SetupReport struct {
	// Created names the streams and consumer that were created.
	Created []string
	// Existing names those that were there already (left as they are).
	Existing []string
	// Warnings are differences from the wanted configuration that the
	// agent works with, e.g. a shorter max age; never changed here.
	Warnings []string
	// Domain is the JetStream domain the streams live in ("" without
	// one); with one, the streams have the fleet layout (fleet.go).
	Domain string `json:",omitempty"`
}

// ErrConflict means an existing stream or consumer is configured so that
// the agent cannot use it (e.g. HIVE_INTAKE without work-queue retention,
// or a stream capturing request subjects). It is never changed: fix or
// delete it by hand.
var ErrConflict = errors.New("conflicting JetStream configuration")

// ErrNoJetStream means the server (or the account) has no JetStream.
var ErrNoJetStream = errors.New("JetStream is not available")

// SetupStreams makes sure streams HIVE_INTAKE and HIVE_JOBS exist and,
// when hiveID is not empty, the hive's durable intake consumer; with create
// false it only checks them (for accounts that may not create streams).
// Existing ones are checked, never changed: a difference the agent works
// with is a warning in the report, one it cannot work with an error
// wrapping ErrConflict. `hive-agent setup` and the agent at start call it.
func SetupStreams(ctx context.Context, js jetstream.JetStream, hiveID string, cfg StreamsConfig, create bool) (SetupReport, error) {
	var rep SetupReport
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	ai, err := js.AccountInfo(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return rep, fmt.Errorf("%w: %w", ErrNoJetStream, err)
		}
		return rep, fmt.Errorf("jetstream account info: %w", err)
	}
	rep.Domain = ai.Domain
	var errs []error
	if ai.Domain == "" {
		for _, want := range []jetstream.StreamConfig{cfg.intake(), cfg.jobs()} {
			if err := ensureStream(ctx, js, want, create, &rep); err != nil {
				errs = append(errs, err)
			}
		}
	} else {
		errs = append(errs, ensureFleetStreams(ctx, js, ai.Domain, hiveID, cfg, create, &rep))
	}
	// HIVE_EVENTS captures every hive's events in every domain: a log of
	// what happened, which replaying starts nothing (docs/topology.md).
	if err := ensureStream(ctx, js, cfg.events(), create, &rep); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return rep, err
	}
	if hiveID != "" {
		if err := ensureConsumer(ctx, js, hiveID, cfg, create, &rep); err != nil {
			return rep, err
		}
		// A stream that captures request subjects answers requests with its
		// PubAck before the agent does (FIELD-NOTES): say so loudly.
		probe, _ := subjects.WorkerCommand(hiveID, subjects.List)
		if name, err := js.StreamNameBySubject(ctx, probe); err == nil && name != "" {
			return rep, fmt.Errorf("%w: stream %s captures request subject %s, so requests get its acknowledgement instead of the agent's reply; remove hive.*.worker subjects from it", ErrConflict, name, probe)
		}
	}
	return rep, nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, create bool, rep *SetupReport) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create {
			return fmt.Errorf("stream %s does not exist and creating streams is off (--jetstream-create=false); create it with `hive-agent setup` or ask the operator: %w", want.Name, err)
		}
		if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		rep.Created = append(rep.Created, "stream "+want.Name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", want.Name, err)
	}
	rep.Existing = append(rep.Existing, "stream "+want.Name)
	return checkStream(s.CachedInfo().Config, want, rep)
}

// checkStream compares an existing stream's configuration with the wanted one.
func checkStream(got, want jetstream.StreamConfig, rep *SetupReport) error {
	var errs []error
	for _, subj := range want.Subjects {
		if !coveredBy(subj, got.Subjects) {
			errs = append(errs, fmt.Errorf("%w: stream %s has subjects %v, which do not capture %s", ErrConflict, got.Name, got.Subjects, subj))
		}
	}
	for _, subj := range got.Subjects {
		if subjectsOverlap(subj, subjects.AllRequests) {
			errs = append(errs, fmt.Errorf("%w: stream %s captures %s, which overlaps the request subjects hive.*.worker.>", ErrConflict, got.Name, subj))
		}
	}
	if got.Retention != want.Retention {
		errs = append(errs, fmt.Errorf("%w: stream %s has retention %s, want %s", ErrConflict, got.Name, got.Retention, want.Retention))
	}
	warn := func(format string, args ...any) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("stream %s: ", got.Name)+fmt.Sprintf(format, args...))
	}
	if got.Storage != want.Storage {
		warn("storage %s, not %s: what it holds does not survive a server restart", got.Storage, want.Storage)
	}
	if got.Duplicates < want.Duplicates {
		warn("duplicate window %s, shorter than %s", got.Duplicates, want.Duplicates)
	}
	if got.MaxAge != want.MaxAge {
		warn("max age %s, not the configured %s (kept as it is)", durationOrNone(got.MaxAge), durationOrNone(want.MaxAge))
	}
	return errors.Join(errs...)
}

func durationOrNone(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	return d.String()
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, hiveID string, cfg StreamsConfig, create bool, rep *SetupReport) error {
	want, err := cfg.consumer(hiveID)
	if err != nil {
		return err
	}
	c, err := js.Consumer(ctx, IntakeStream, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if !create {
			return fmt.Errorf("consumer %s of stream %s does not exist and creating is off (--jetstream-create=false): %w", want.Durable, IntakeStream, err)
		}
		if _, err := js.CreateConsumer(ctx, IntakeStream, want); err != nil {
			return fmt.Errorf("create consumer %s: %w", want.Durable, err)
		}
		rep.Created = append(rep.Created, "consumer "+IntakeStream+"/"+want.Durable)
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", want.Durable, err)
	}
	rep.Existing = append(rep.Existing, "consumer "+IntakeStream+"/"+want.Durable)
	got := c.CachedInfo().Config
	if got.FilterSubject != want.FilterSubject || len(got.FilterSubjects) > 0 {
		return fmt.Errorf("%w: consumer %s filters %q %v, want %q", ErrConflict, want.Durable, got.FilterSubject, got.FilterSubjects, want.FilterSubject)
	}
	if got.AckPolicy != jetstream.AckExplicitPolicy {
		return fmt.Errorf("%w: consumer %s has ack policy %s, want explicit", ErrConflict, want.Durable, got.AckPolicy)
	}
	if got.AckWait != want.AckWait {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("consumer %s: ack wait %s, not the configured %s (kept as it is)", want.Durable, got.AckWait, want.AckWait))
	}
	return nil
}

// coveredBy reports whether every subject matching subj matches one of patterns.
func coveredBy(subj string, patterns []string) bool {
	for _, p := range patterns {
		if covers(p, subj) {
			return true
		}
	}
	return false
}

// covers reports whether pattern matches every subject subj matches.
func covers(pattern, subj string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subj, ".")
	for i, pt := range p {
		if pt == ">" {
			return i < len(s)
		}
		if i >= len(s) {
			return false
		}
		switch {
		case pt == "*":
			if s[i] == ">" {
				return false
			}
		case pt != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// subjectsOverlap reports whether some subject matches both a and b.
func subjectsOverlap(a, b string) bool {
	x, y := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] == ">" || y[i] == ">" {
			return true
		}
		if x[i] != "*" && y[i] != "*" && x[i] != y[i] {
			return false
		}
	}
	return len(x) == len(y)
}
