package client_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/rbee/hive-agent/client"
)

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"w2", "w10", -1},
		{"w10", "w2", 1},
		{"w2", "w2", 0},
		{"w", "w1", -1},
		{"", "a", -1},
		{"a", "b", -1},
		{"w02", "w2", 1}, // same value: fewer leading zeros first
		{"w2a", "w2b", -1},
		{"w2-10", "w2-9", 1},
		{"worker-9", "worker-10", -1},
		{"99999999999999999999", "100000000000000000000", -1}, // beyond int64
		{"b1", "a2", 1},
		{"1", "a", -1},
	}
	for _, tt := range tests {
		if got := client.NaturalCompare(tt.a, tt.b); got != tt.want {
			t.Errorf("NaturalCompare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := client.NaturalLess(tt.a, tt.b); got != (tt.want < 0) {
			t.Errorf("NaturalLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want < 0)
		}
	}
	ids := []string{"w10", "w1", "gpu-2", "w2", "w9", "gpu-10", "w01"}
	slices.SortFunc(ids, client.NaturalCompare)
	if want := []string{"gpu-2", "gpu-10", "w1", "w01", "w2", "w9", "w10"}; !slices.Equal(ids, want) {
		t.Errorf("sorted: got %v, want %v", ids, want)
	}
}

func TestSortWorkers(t *testing.T) {
	ws := []client.Worker{{HiveID: "h10", WorkerID: "w1"}, {HiveID: "h2", WorkerID: "w10"}, {HiveID: "h2", WorkerID: "w2"}}
	client.SortWorkers(ws)
	var got []string
	for _, w := range ws {
		got = append(got, w.HiveID+"/"+w.WorkerID)
	}
	if want := []string{"h2/w2", "h2/w10", "h10/w1"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestWriteTable(t *testing.T) {
	exitedAt := time.Now().Add(-3*time.Hour - 10*time.Second) // "3h00m ago" for minutes to come
	code := 3
	vram := int64(30210)
	ws := []client.Worker{
		{HiveID: "gpu-box", WorkerID: "w2", PID: 4242, Port: 9100, Device: "cuda:0", ModelID: "meta-llama/Llama-3-8b", WorkerType: "cuda-llm",
			UptimeMS: (2*3600 + 5*60 + 9) * 1000, RSSBytes: 3 << 30, GPUMemoryMiB: &vram, WorkerStatus: client.WorkerStatus{State: "ready", Restarts: 2}},
		{HiveID: "gpu-box", WorkerID: "w10", PID: 77, Port: 9101, Device: "cpu", ModelID: "m", WorkerType: "cpu-llm", UptimeMS: 4500, RSSBytes: 12 << 20,
			WorkerStatus: client.WorkerStatus{State: "running"}},
		{HiveID: "gpu-box", WorkerID: "w11", Port: 9102, Device: "cpu", ModelID: "m", WorkerType: "cpu-llm",
			WorkerStatus: client.WorkerStatus{State: "exited", ExitCode: &code, ExitedAt: &exitedAt}},
	}
	var b bytes.Buffer
	if err := client.WriteTable(&b, ws); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"HIVE     WORKER  STATE    RESTARTS  TYPE      PID   PORT  DEVICE  MODEL                  UPTIME             MEMORY   GPU MEMORY\n" +
		"gpu-box  w2      ready    2         cuda-llm  4242  9100  cuda:0  meta-llama/Llama-3-8b  2h05m              3.0 GiB  30 GiB\n" +
		"gpu-box  w10     running  0         cpu-llm   77    9101  cpu     m                      4s                 12 MiB   -\n" +
		"gpu-box  w11     exited   0         cpu-llm   -     9102  cpu     m                      exit 3, 3h00m ago  -        -\n"
	if b.String() != want {
		t.Errorf("table:\n got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteHives(t *testing.T) {
	hs := []client.HiveInfo{
		{HiveID: "h1", Version: "v1.2.0", Host: "box", Devices: []string{"cpu", "cuda:0"}, Workers: 3, InFlight: 1, MaxInFlight: 32, UptimeMS: 90_000},
		{HiveID: "h2", Version: "0.0.1", Workers: -1, MaxInFlight: 32},
	}
	var b bytes.Buffer
	if err := client.WriteHives(&b, hs); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"HIVE  VERSION  HOST  DEVICES     WORKERS  IN FLIGHT  UPTIME\n" +
		"h1    v1.2.0   box   cpu,cuda:0  3        1/32       1m30s\n" +
		"h2    0.0.1    -     -           ?        0/32       0s\n"
	if b.String() != want {
		t.Errorf("table:\n got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 512: "512 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 10 << 10: "10 KiB",
		12 << 20: "12 MiB", 3 << 30: "3.0 GiB", 1 << 40: "1.0 TiB", 1<<64 - 1: "16 EiB",
	} {
		if got := client.HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 999 * time.Millisecond: "0s", 45 * time.Second: "45s",
		250 * time.Second: "4m10s", time.Hour: "1h00m", 2*time.Hour + 5*time.Minute + 59*time.Second: "2h05m",
		76*time.Hour + 30*time.Minute: "3d04h",
	} {
		if got := client.HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestEventLine(t *testing.T) {
	ts := time.Date(2026, 11, 28, 17, 4, 5, 123456789, time.Local)
	e := client.Event{TS: ts, Action: "worker_spawned", Human: "Worker w1 is running as pid 42."}
	want := "17:04:05.123  worker_spawned          Worker w1 is running as pid 42."
	if got := client.EventLine(e); got != want {
		t.Errorf("EventLine:\n got %q\nwant %q", got, want)
	}
}
