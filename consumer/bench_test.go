package consumer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/internal/testenv"
	"github.com/rbee/hive-agent/wire"
)

// BenchmarkBareRequestReply is the floor: a NATS request to a responder
// that answers at once, on the same kind of embedded server.
func BenchmarkBareRequestReply(b *testing.B) {
	s := testenv.NATS(b)
	nc := testenv.Connect(b, s)
	srv := testenv.Connect(b, s)
	srv.Subscribe("bare", func(m *nats.Msg) { m.Respond([]byte(`{"ok":true}`)) })
	srv.Flush()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := nc.Request("bare", []byte("{}"), 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAgentList is worker.list through the agent (narration, result
// and reply published) with workers=0 and workers=20 running.
func BenchmarkAgentList(b *testing.B) {
	for _, n := range []int{0, 20} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			a := startAgent(b, testenv.NATS(b))
			{
				for i := 0; i < n; i++ {
					a.must(b, "spawn", fmt.Sprintf(`{"worker_id":"b%02d","model_id":"m","device":"cpu","wait":"exec"}`, i), nil)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var res wire.ListResult
					a.must(b, "list", "", &res)
					if len(res.Workers) != n {
						b.Fatalf("got %d workers, want %d", len(res.Workers), n)
					}
				}
				b.StopTimer()
				testenv.Stop(a.hive)
			}
		})
	}
}

// BenchmarkAgentSpawnDelete is a spawn (wait: exec) and a delete through
// the agent; compare with spawner's BenchmarkBareForkExec.
func BenchmarkAgentSpawnDelete(b *testing.B) {
	a := startAgent(b, testenv.NATS(b))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.must(b, "spawn", `{"worker_id":"bench","model_id":"m","device":"cpu","wait":"exec"}`, nil)
		a.must(b, "delete", `{"worker_id":"bench"}`, nil)
	}
}
