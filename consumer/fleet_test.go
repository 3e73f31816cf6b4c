package consumer_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/consumer"
	"github.com/rbee/hive-agent/internal/testenv"
)

// In a JetStream domain, SetupStreams gives HIVE_INTAKE the subjects of
// the hives set up there only (adding each), and HIVE_JOBS the store
// subjects of the domain, transformed to job.>; without creating it
// reports what is missing; streams of the old layout are used with a warning.
func TestSetupStreams_FleetLayout(t *testing.T) {
	s := testenv.NATSWith(t, &server.Options{JetStream: true, JetStreamDomain: "d1", StoreDir: t.TempDir()})
	js, err := jetstream.New(testenv.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep, err := consumer.SetupStreams(ctx, js, "h1", testStreams, true)
	if err != nil || rep.Domain != "d1" {
		t.Fatalf("setup h1: %+v, %v", rep, err)
	}
	if _, err := consumer.SetupStreams(ctx, js, "h2", testStreams, false); err == nil || !strings.Contains(err.Error(), "does not capture hive.h2.intake.>") {
		t.Errorf("setup h2 without creating: %v, want the missing subject named", err)
	}
	if rep, err = consumer.SetupStreams(ctx, js, "h2", testStreams, true); err != nil || !slices.Contains(rep.Created, "subject hive.h2.intake.> of stream HIVE_INTAKE") {
		t.Errorf("setup h2: %+v, %v", rep, err)
	}
	intake, _ := js.Stream(ctx, consumer.IntakeStream)
	if got := intake.CachedInfo().Config.Subjects; !slices.Equal(got, []string{"hive.h1.intake.>", "hive.h2.intake.>"}) {
		t.Errorf("HIVE_INTAKE subjects %v", got)
	}
	jobs, _ := js.Stream(ctx, consumer.JobsStream)
	cfg := jobs.CachedInfo().Config
	if !slices.Equal(cfg.Subjects, []string{"hive-jobs.d1.job.>"}) || cfg.SubjectTransform == nil || cfg.SubjectTransform.Destination != "job.>" {
		t.Errorf("HIVE_JOBS subjects %v, transform %+v", cfg.Subjects, cfg.SubjectTransform)
	}
	// A stored copy is read back on its job subject.
	if _, err := js.Publish(ctx, "hive-jobs.d1.job.j1.result", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if m, err := jobs.GetLastMsgForSubject(ctx, "job.j1.result"); err != nil || m.Subject != "job.j1.result" {
		t.Errorf("stored copy: %+v, %v", m, err)
	}

	// The old layout in a domain: kept, with warnings naming it.
	for _, name := range []string{consumer.IntakeStream, consumer.JobsStream} {
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	js.CreateStream(ctx, jetstream.StreamConfig{Name: consumer.IntakeStream, Subjects: []string{"hive.*.intake.>"}, Retention: jetstream.WorkQueuePolicy})
	js.CreateStream(ctx, jetstream.StreamConfig{Name: consumer.JobsStream, Subjects: []string{"job.>"}})
	rep, err = consumer.SetupStreams(ctx, js, "h1", testStreams, true)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(rep.Warnings, "\n")
	if !strings.Contains(joined, "captures hive.*.intake.> in JetStream domain d1") || !strings.Contains(joined, "captures job.> in JetStream domain d1") {
		t.Errorf("warnings %q", rep.Warnings)
	}
	// A bad HIVE_JOBS (another transform) is a conflict.
	js.DeleteStream(ctx, consumer.JobsStream)
	js.CreateStream(ctx, jetstream.StreamConfig{Name: consumer.JobsStream, Subjects: []string{"hive-jobs.d1.job.>"}})
	if _, err := consumer.SetupStreams(ctx, js, "h1", testStreams, true); !errors.Is(err, consumer.ErrConflict) {
		t.Errorf("HIVE_JOBS without the transform: %v, want ErrConflict", err)
	}
}
