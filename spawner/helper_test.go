//go:build unix

package spawner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The test binary doubles as a second agent: run with helperEnv set, it
// starts workers with a Spawner of its own and exits, leaving them running
// as another process's workers (reparented once it exits), which no
// in-process Spawner can fake.
const helperEnv = "SPAWNER_TEST_HELPER"

// helperResult is one line the helper printed: "ok <id> <pid> <port>",
// "running <id>" or "error <id> <message>".
type helperResult struct {
	status, id string
	pid, port  int
}

// startHelper starts the helper agent for hive with logDir and containment
// mode, asking it to start ids (concurrently) in the port range with
// model. The caller waits with waitHelper.
func startHelper(t *testing.T, hive, logDir, mode string, portMin, portMax int, model string, ids []string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=spawn", "HELPER_HIVE="+hive, "HELPER_LOG_DIR="+logDir,
		"HELPER_WORKER_DIR="+workerDir, fmt.Sprintf("HELPER_PORTS=%d-%d", portMin, portMax),
		"HELPER_MODEL="+model, "HELPER_CONTAINMENT="+mode, "HELPER_IDS="+strings.Join(ids, ","))
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	return cmd, out
}

func waitHelper(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer) []helperResult {
	t.Helper()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var res []helperResult
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		r := helperResult{status: f[0], id: f[1]}
		if r.status == "ok" && len(f) == 4 {
			r.pid, _ = strconv.Atoi(f[2])
			r.port, _ = strconv.Atoi(f[3])
		}
		res = append(res, r)
	}
	return res
}

func runHelper() int {
	var lo, hi int
	fmt.Sscanf(os.Getenv("HELPER_PORTS"), "%d-%d", &lo, &hi)
	s, err := New(Config{HiveID: os.Getenv("HELPER_HIVE"), LogDir: os.Getenv("HELPER_LOG_DIR"), PortMin: lo, PortMax: hi,
		Containment: os.Getenv("HELPER_CONTAINMENT"), LockPath: os.Getenv("HELPER_LOCK")})
	if err != nil {
		fmt.Println("error - new:", err)
		return 1
	}
	bin, err := ResolveBinary("cpu-llm-worker-rbee", []string{os.Getenv("HELPER_WORKER_DIR")})
	if err != nil {
		fmt.Println("error - resolve:", err)
		return 1
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range strings.Split(os.Getenv("HELPER_IDS"), ",") {
		wg.Go(func() {
			h, err := s.Start(context.Background(), rbee(Spec{WorkerID: id, ModelID: os.Getenv("HELPER_MODEL"),
				Device: Device{Raw: "cpu", Kind: CPU, Index: -1}, BinaryPath: bin, QueenURL: testQueenURL}))
			mu.Lock()
			defer mu.Unlock()
			var running *RunningError
			switch {
			case err == nil:
				fmt.Printf("ok %s %d %d\n", id, h.PID, h.Port)
			case errors.As(err, &running):
				fmt.Printf("running %s\n", id)
			default:
				fmt.Printf("error %s %v\n", id, err)
			}
		})
	}
	wg.Wait()
	return 0
}
