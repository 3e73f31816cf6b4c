package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkRequest_List is worker.list by request/reply on a server with
// JetStream, the agent storing each result in HIVE_JOBS: the baseline of
// BenchmarkIntake_List.
func BenchmarkRequest_List(b *testing.B) {
	s := jsServer(b, "", 0)
	a := startAgent(b, s, withJetStream(true))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.must(b, "list", "", nil)
	}
}

// BenchmarkIntake_List is worker.list through the durable intake: one at
// a time (sequential: publish acknowledged by the stream, then wait for
// the result) and many at once (pipelined: publish all, then wait for
// every result). Each op is one command.
func BenchmarkIntake_List(b *testing.B) {
	for _, mode := range []string{"sequential", "pipelined"} {
		b.Run(mode, func(b *testing.B) {
			s := jsServer(b, "", 0)
			a := startAgent(b, s, withJetStream(true))
			nc, js := jsOf(b, s)
			results := make(chan *nats.Msg, 1<<16)
			sub, err := nc.ChanSubscribe("job.*.result", results)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Unsubscribe()
			nc.Flush()
			subj := "hive." + a.hive + ".intake.worker.list"
			ctx := context.Background()
			b.ResetTimer()
			if mode == "sequential" {
				for i := 0; i < b.N; i++ {
					if _, err := js.Publish(ctx, subj, []byte(fmt.Sprintf(`{"job_id":"b%d"}`, i))); err != nil {
						b.Fatal(err)
					}
					<-results
				}
				return
			}
			for i := 0; i < b.N; i++ {
				if _, err := js.PublishAsync(subj, []byte(fmt.Sprintf(`{"job_id":"b%d"}`, i))); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(60 * time.Second):
				b.Fatal("publishes not acknowledged")
			}
			for i := 0; i < b.N; i++ {
				select {
				case <-results:
				case <-time.After(60 * time.Second):
					b.Fatalf("got %d of %d results", i, b.N)
				}
			}
		})
	}
}

// BenchmarkIntake_SpawnDelete is a spawn (wait exec) and a delete of one
// worker through the intake, back to back; compare BenchmarkAgentSpawnDelete.
func BenchmarkIntake_SpawnDelete(b *testing.B) {
	s := jsServer(b, "", 0)
	a := startAgent(b, s, withJetStream(true))
	nc, js := jsOf(b, s)
	results := make(chan *nats.Msg, 1024)
	sub, _ := nc.ChanSubscribe("job.*.result", results)
	defer sub.Unsubscribe()
	nc.Flush()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		js.Publish(ctx, "hive."+a.hive+".intake.worker.spawn", []byte(spawnBody(fmt.Sprintf("bs%d", i), "bw", "")), jetstream.WithMsgID(fmt.Sprintf("bs%d", i)))
		js.Publish(ctx, "hive."+a.hive+".intake.worker.delete", []byte(fmt.Sprintf(`{"job_id":"bd%d","worker_id":"bw","grace_ms":2000}`, i)))
		<-results
		<-results
	}
}
