package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/rbee/hive-agent/client"
	"github.com/rbee/hive-agent/internal/fakesmi"
	"github.com/rbee/hive-agent/internal/testenv"
)

// fakeGPUs installs a fake nvidia-smi showing the recorded H100 and puts
// it first on the PATH of the agents and CLIs this test starts.
func fakeGPUs(t *testing.T, st fakesmi.State) (*fakesmi.Fake, []fakesmi.GPU) {
	t.Helper()
	b, err := os.ReadFile("../../spawner/testdata/nvidia-h100-1gpu/nvidia-smi-query.csv")
	if err != nil {
		t.Fatal(err)
	}
	gs, err := fakesmi.FromQueryCSV(string(b), 1)
	if err != nil {
		t.Fatal(err)
	}
	st.GPUs = gs
	f := fakesmi.Install(t, st)
	t.Setenv("PATH", f.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return f, gs
}

// The real agent: the metadata's gpus (JSON beside the devices list older
// clients read), hives --gpus with live figures, and ls's GPU column.
func TestAgent_GPUFiguresFromFakeNvidiaSMI(t *testing.T) {
	f, gs := fakeGPUs(t, fakesmi.State{ReapDead: true})
	s := testenv.NATS(t)
	hive := testenv.HiveID(t)
	startAgent(t, s, hive)
	nc := testenv.Connect(t, s)
	msg, err := nc.Request("$SRV.INFO.hive-agent", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	if got := info.Metadata["devices"]; got != "cpu,cuda:0" {
		t.Errorf("metadata devices = %q, want cpu,cuda:0", got)
	}
	var meta []client.GPU
	if err := json.Unmarshal([]byte(info.Metadata["gpus"]), &meta); err != nil || len(meta) != 1 {
		t.Fatalf("metadata gpus %q: %v", info.Metadata["gpus"], err)
	}
	if g := meta[0]; g.UUID != gs[0].UUID || g.Name != "NVIDIA H100 80GB HBM3" || g.MemoryTotalMiB != 81559 || g.MemoryFreeMiB != 81559 || g.Tainted {
		t.Errorf("metadata gpu %+v", g)
	}

	res := spawnJSON(t, s.ClientURL(), "-H", hive, "-m", "test/m", "-d", "cuda:0", "--id", "w1")
	f.Write(t, fakesmi.State{GPUs: gs, ReapDead: true, Apps: []fakesmi.App{{PID: res.PID, GPUUUID: gs[0].UUID, UsedMiB: 30210}}})
	wantOut := func(args []string, has ...string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := mustCLI(t, s.ClientURL(), args...)
			ok := true
			for _, h := range has {
				ok = ok && strings.Contains(r.stdout, h)
			}
			if ok {
				t.Logf("hive-agent %s:\n%s", strings.Join(args, " "), r.stdout)
				return r.stdout
			}
			if time.Now().After(deadline) {
				t.Fatalf("hive-agent %s never showed %q:\n%s", strings.Join(args, " "), has, r.stdout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wantOut([]string{"hives", "--gpus"}, hive, "cuda:0", gs[0].UUID, "81559 MiB", "30210 MiB", strconv.Itoa(81559-30210)+" MiB", "no")
	wantOut([]string{"ls", "-H", hive}, "GPU MEMORY", "30 GiB")
	wantOut([]string{"stop", "w1", "-H", hive}, "gpu released: yes, in")
}

// Issue 14 item 13: an nvidia-smi that hangs with a child holding its
// output pipe delays the agent's start by at most its bound.
func TestAgent_HungNvidiaSMIDoesNotHoldUpServing(t *testing.T) {
	f, _ := fakeGPUs(t, fakesmi.State{Hang: fakesmi.HangChild})
	s := testenv.NATS(t)
	hive := testenv.HiveID(t)
	// startAgent waits up to 60 s for "serving worker commands"; before the
	// fix it took 61-80 s, here the child would hold the pipe for an hour.
	startAgent(t, s, hive)
	r := runCLI(t, s.ClientURL(), "spawn", "-H", hive, "-m", "test/m", "-d", "cuda:0")
	wantCLI(t, r, exitFailure, "device_unavailable")
	mustCLI(t, s.ClientURL(), "ls", "-H", hive)
	if len(f.Held(t)) == 0 {
		t.Fatal("no child held the pipe: the test tests nothing")
	}
}
