package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/testenv"
)

// hiveIDs returns base-1, base-2 and base-10, cleaned up like newHive's.
func hiveIDs(t *testing.T) []string {
	base := testenv.HiveID(t)
	ids := []string{base + "-1", base + "-2", base + "-10"}
	for _, id := range ids {
		testenv.NoLeftovers(t, id)
		t.Cleanup(func() { testenv.Stop(id) })
	}
	return ids
}

// Three agents with three hive ids on one server: ls --all and hives find
// each of them through discovery and merge their answers in natural order;
// a hive that is discovered but does not answer is reported on stderr
// after what the others answered, with exit 3.
func TestCLI_ThreeHives(t *testing.T) {
	ids := hiveIDs(t)
	s := testenv.NATS(t)
	url := s.ClientURL()
	for _, id := range []string{ids[2], ids[0], ids[1]} {
		startAgent(t, s, id)
	}
	for _, id := range ids {
		mustCLI(t, url, "spawn", "--hive", id, "--model", "m", "--device", "cpu", "--id", "w1")
	}
	mustCLI(t, url, "spawn", "--hive", ids[1], "--model", "m", "--device", "cpu", "--id", "w2")
	want := []string{ids[0] + "/w1", ids[1] + "/w1", ids[1] + "/w2", ids[2] + "/w1"}

	// --all, and no hive at all, list every hive; --all wins over HIVE_ID.
	for _, args := range [][]string{{"ls", "--all"}, {"ls"}} {
		r := mustCLI(t, url, args...)
		if got := tableRows(t, r.stdout); !slices.Equal(got, want) {
			t.Errorf("%q rows: got %q, want %q: %s", args, got, want, r)
		}
	}
	cmd := cliCommand(t, url, "ls", "-a", "--json")
	cmd.Env = append(cmd.Env, "HIVE_ID="+ids[0])
	out, err := cmd.Output()
	var ls struct{ Workers []client.Worker }
	if err != nil || json.Unmarshal(out, &ls) != nil {
		t.Fatalf("ls -a --json with HIVE_ID set: %v: %s", err, out)
	}
	var got []string
	for _, w := range ls.Workers {
		got = append(got, w.HiveID+"/"+w.WorkerID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ls -a --json: got %q, want %q", got, want)
	}

	r := mustCLI(t, url, "hives")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "HIVE") {
		t.Fatalf("hives: want a header and 3 rows: %s", r)
	}
	for i, id := range ids {
		f := strings.Fields(lines[i+1])
		if f[0] != id || f[1] == "" || f[4] != []string{"1", "2", "1"}[i] || f[5] != "0/32" {
			t.Errorf("hives row %d: got %q, want hive %s: %s", i, f, id, r)
		}
	}
	r = mustCLI(t, url, "hives", "--json")
	var hs struct{ Hives []client.HiveInfo }
	if err := json.Unmarshal([]byte(r.stdout), &hs); err != nil || len(hs.Hives) != 3 {
		t.Fatalf("hives --json: %v: %s", err, r)
	}
	for i, h := range hs.Hives {
		if h.HiveID != ids[i] || h.Instance == "" || h.Version == "" || h.Workers != []int{1, 2, 1}[i] || h.MaxInFlight != 32 || h.Started.IsZero() {
			t.Errorf("hives --json entry %d: %+v", i, h)
		}
	}

	// A service that discovery finds but that serves no hive commands.
	nc := testenv.Connect(t, s)
	broken := ids[0] + "-broken"
	svc, err := micro.AddService(nc, micro.Config{Name: client.ServiceName, Version: "0.0.1",
		Metadata: map[string]string{"hive_id": broken, "version": "0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	// micro writes its start time after its handlers are live, unlocked;
	// AddEndpoint takes the lock that its $SRV.STATS handler takes, which
	// orders them (the agent adds its endpoints the same way).
	if err := svc.AddEndpoint("nothing", micro.HandlerFunc(func(micro.Request) {}), micro.WithEndpointSubject(broken+".nothing")); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, url, "ls", "--all", "--timeout", "2s")
	wantCLI(t, r, exitNoAgent, "error: hive "+broken+": no agent answered")
	if got := tableRows(t, r.stdout); !slices.Equal(got, want) {
		t.Errorf("ls --all with a broken hive: rows %q, want %q: %s", got, want, r)
	}
	r = runCLI(t, url, "hives", "--timeout", "2s")
	wantCLI(t, r, exitNoAgent, "error: hive "+broken)
	if !strings.Contains(r.stdout, ids[2]) || !strings.Contains(r.stdout, broken) {
		t.Errorf("hives with a broken hive: %s", r)
	}

	for _, w := range want {
		hive, worker, _ := strings.Cut(w, "/")
		mustCLI(t, url, "stop", worker, "--hive", hive)
	}
}
