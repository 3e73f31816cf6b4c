package client_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive-agent/client"
)

// The GPU and pending-restart events read as sentences, not as their raw
// JSON (bodies as docs/gpus.md and docs/protocol.md show them).
func TestEventText_GPUAndPendingRestartEvents(t *testing.T) {
	for _, tc := range []struct{ kind, data, want string }{
		{"gpu.released", `{"hive_id":"h1","device":"cuda:0","uuid":"GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9","worker_id":"w1","freed_mib":30210,"ms":8}`,
			"cuda:0 (GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9) released: 30210 MiB freed after 8ms"},
		{"gpu.tainted", `{"hive_id":"h1","device":"cuda:0","uuid":"GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9","worker_id":"w1","pids":[16922,16923],"used_mib":30210}`,
			"cuda:0 (GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9) tainted: pids 16922, 16923 still hold 30210 MiB; it refuses spawns until they are gone"},
		{"worker.restart_resumed", `{"hive_id":"h1","worker_id":"w1","job_id":"j","model_id":"m","port":9700,"restart":1,"max_restarts":2,"due_at":"2026-12-03T08:46:36.434Z","restart_in_ms":2875}`,
			"restart 1 of 2, announced by an earlier agent, resumed: due in 2.875s"},
		{"worker.restart_abandoned", `{"hive_id":"h1","worker_id":"w3","reason":"restarts/w3.json: unexpected end of JSON input"}`,
			"restart announced by an earlier agent abandoned: restarts/w3.json: unexpected end of JSON input"},
	} {
		e := client.HiveEvent{Time: time.Now(), HiveID: "h1", Kind: tc.kind, WorkerID: "w1", Data: []byte(tc.data)}
		if got := client.EventText(e); !strings.HasSuffix(got, "  "+tc.want) {
			t.Errorf("%s: got %q, want it to end in %q", tc.kind, got, tc.want)
		}
	}
}
