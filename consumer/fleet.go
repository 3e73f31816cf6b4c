package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/subjects"
)

// The fleet layout (docs/topology.md): in a JetStream domain, each command
// and each outcome is stored once in the whole system, in the domain of the
// hive's agent.
//
//   - HIVE_INTAKE captures hive.<hive>.intake.> of the hives served in the
//     domain only: each agent adds its own hive's subject when it starts
//     (`hive-agent setup --hive` does it ahead of time).
//   - HIVE_JOBS captures hive-jobs.<domain>.job.> and stores each message
//     as job.> (a subject transform), so readers see the usual subjects.
//     The agent publishes each result and narration event twice: on
//     job.<job>.… for live listeners (no stream captures it) and on
//     hive-jobs.<domain>.job.<job>.… for its own domain's stream.
//
// Subjects of a stream are interest on the whole NATS system, leaf links
// included: a stream capturing hive.*.intake.> or job.> in every domain
// stores every command and outcome once per domain.
const (
	// JobsStoreRoot is the first token of the subjects results are stored through.
	JobsStoreRoot = "hive-jobs"
	// legacyIntake and legacyJobs are what the streams capture without a domain.
	legacyIntake = subjects.AllIntake
	legacyJobs   = subjects.AllJobs
)

// JobsStoreSubjects is what HIVE_JOBS captures in JetStream domain d:
// hive-jobs.<d>.job.>.
func JobsStoreSubjects(domain string) string { return JobsStoreRoot + "." + domain + ".job.>" }

func (c StreamsConfig) fleetIntake(domain, filter string) jetstream.StreamConfig {
	sc := c.intake()
	sc.Subjects = []string{filter}
	sc.Description = "hive-agent durable intake of the hives served in JetStream domain " + domain
	return sc
}

func (c StreamsConfig) fleetJobs(domain string) jetstream.StreamConfig {
	sc := c.jobs()
	src := JobsStoreSubjects(domain)
	sc.Subjects = []string{src}
	sc.SubjectTransform = &jetstream.SubjectTransformConfig{Source: src, Destination: legacyJobs}
	sc.Description = "hive-agent job outcomes of the hives served in JetStream domain " + domain + ", stored through " + src + " as job.>"
	return sc
}

// ensureFleetStreams is SetupStreams' part for a JetStream domain.
func ensureFleetStreams(ctx context.Context, js jetstream.JetStream, domain, hiveID string, cfg StreamsConfig, create bool, rep *SetupReport) error {
	if err := subjects.ValidToken(domain); err != nil {
		return fmt.Errorf("jetstream domain %q: %w", domain, err)
	}
	var errs []error
	if hiveID == "" {
		rep.Warnings = append(rep.Warnings, "JetStream domain "+domain+": stream "+IntakeStream+" captures only the hives served there; name one with --hive to create or extend it")
	} else if err := ensureIntakeSubject(ctx, js, domain, hiveID, cfg, create, rep); err != nil {
		errs = append(errs, err)
	}
	if err := ensureFleetJobs(ctx, js, domain, cfg, create, rep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// addAttempts bounds the read-modify-write of HIVE_INTAKE's subjects: two
// agents starting at once in one domain may each drop the other's subject,
// and each checks and adds again.
const addAttempts = 5

func ensureIntakeSubject(ctx context.Context, js jetstream.JetStream, domain, hiveID string, cfg StreamsConfig, create bool, rep *SetupReport) error {
	filter, err := intakeFilter(hiveID)
	if err != nil {
		return err
	}
	want := cfg.fleetIntake(domain, filter)
	added := false
	for attempt := 1; ; attempt++ {
		s, err := js.Stream(ctx, IntakeStream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if !create {
				return fmt.Errorf("stream %s does not exist in JetStream domain %s and creating streams is off (--jetstream-create=false); create it with `hive-agent setup --jetstream-domain %s --hive %s`: %w", IntakeStream, domain, domain, hiveID, err)
			}
			if _, err := js.CreateStream(ctx, want); err == nil {
				rep.Created = append(rep.Created, "stream "+IntakeStream+" ("+filter+")")
				return nil
			} else if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return fmt.Errorf("create stream %s: %w", IntakeStream, err)
			}
			continue // another agent created it just now: add to it
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", IntakeStream, err)
		}
		got := s.CachedInfo().Config
		if coveredBy(filter, got.Subjects) {
			if !added {
				rep.Existing = append(rep.Existing, "stream "+IntakeStream)
			}
			if coveredBy(legacyIntake, got.Subjects) {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("stream %s captures %s in JetStream domain %s: a command for a hive served in another domain is stored here too and never consumed (docs/topology.md)", IntakeStream, legacyIntake, domain))
			}
			return checkStream(got, want, rep)
		}
		if !create {
			return fmt.Errorf("stream %s in JetStream domain %s does not capture %s and changing streams is off (--jetstream-create=false); add it with `hive-agent setup --jetstream-domain %s --hive %s`", IntakeStream, domain, filter, domain, hiveID)
		}
		if attempt > addAttempts {
			return fmt.Errorf("stream %s: %s added %d times and dropped again by concurrent changes", IntakeStream, filter, addAttempts)
		}
		got.Subjects = append(got.Subjects, filter)
		if _, err := js.UpdateStream(ctx, got); err != nil {
			return fmt.Errorf("add %s to stream %s: %w", filter, IntakeStream, err)
		}
		if !added {
			rep.Created = append(rep.Created, "subject "+filter+" of stream "+IntakeStream)
			added = true
		}
	}
}

func ensureFleetJobs(ctx context.Context, js jetstream.JetStream, domain string, cfg StreamsConfig, create bool, rep *SetupReport) error {
	want := cfg.fleetJobs(domain)
	s, err := js.Stream(ctx, JobsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return ensureStream(ctx, js, want, create, rep)
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", JobsStream, err)
	}
	rep.Existing = append(rep.Existing, "stream "+JobsStream)
	got := s.CachedInfo().Config
	if coveredBy(legacyJobs, got.Subjects) {
		// Made without a domain (or by hand): it works, results are stored
		// by subject, but every domain with such a stream stores every outcome.
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("stream %s captures %s in JetStream domain %s: every domain with such a stream stores every job's outcome; delete it to get the fleet layout (docs/topology.md)", JobsStream, legacyJobs, domain))
		return checkStream(got, cfg.jobs(), rep)
	}
	err = checkStream(got, want, rep)
	if t := got.SubjectTransform; t == nil || *t != *want.SubjectTransform {
		err = errors.Join(err, fmt.Errorf("%w: stream %s has subject transform %v, want %s → %s", ErrConflict, JobsStream, t, want.SubjectTransform.Source, want.SubjectTransform.Destination))
	}
	return err
}

// storePrefix is what the job store puts before job.<job>.… so that
// stream cfg (HIVE_JOBS) stores it: "" when it captures job.> itself,
// hive-jobs.<domain>. in the fleet layout.
func storePrefix(cfg jetstream.StreamConfig) string {
	if coveredBy(legacyJobs, cfg.Subjects) {
		return ""
	}
	if t := cfg.SubjectTransform; t != nil && t.Destination == legacyJobs {
		return strings.TrimSuffix(t.Source, legacyJobs)
	}
	return ""
}

// storedCopy is msg on the subject that its domain's HIVE_JOBS stores.
func storedCopy(msg *nats.Msg, prefix string) *nats.Msg {
	return &nats.Msg{Subject: prefix + msg.Subject, Data: msg.Data, Header: msg.Header}
}
