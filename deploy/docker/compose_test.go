// Package docker_test runs the repository's Dockerfile and
// docker-compose.yml for real: images built (base images from Debian
// packages where no registry is reachable), NATS with JetStream on a
// volume, the agent, a worker spawned in the agent's container and reached
// from the host, and the stack taken down and up with an intake command
// kept. It is skipped, saying why, where no Docker engine answers.
package docker_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive-agent/internal/testenv"
)

// catalog makes the test worker listen on every address of the agent's
// container, as a worker reached from outside must.
const catalog = `worker_types:
  cpu-llm:
    description: the test worker, listening on 0.0.0.0
    binary: cpu-llm-worker-rbee
    devices: [cpu]
    pin_gpu: false
    args: [--worker-id, "{worker_id}", --model, "{model_id}", --device, "{device}",
           --port, "{port}", --queen-url, "{queen_url}", --host, 0.0.0.0]
`

type stack struct {
	t       *testing.T
	project string
	env     []string
	agent   string // the hive-agent binary on the host, as the client
	nats    string
}

func (s *stack) compose(timeout time.Duration, args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-p", s.project}, args...)...)
	cmd.Dir, cmd.Env = testenv.RepoRoot(), s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// client runs a client command of the host's hive-agent against the
// stack's NATS, to its end.
func (s *stack) client(args ...string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.agent, append(args, "-s", s.nats)...)
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), string(out)
}

// waitAgent waits until the agent of hive h1 answers.
func (s *stack) waitAgent() {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		code, out := s.client("ls", "--hive", "h1", "--timeout", "2s")
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the agent never answered: %s\n%s", out, s.logs())
		}
		time.Sleep(time.Second)
	}
}

func (s *stack) logs() string {
	cmd := exec.Command("docker-compose", "-p", s.project, "logs", "--no-color")
	cmd.Dir, cmd.Env = testenv.RepoRoot(), s.env
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// freeRange finds n consecutive free ports on the host from port from on.
func freeRange(t *testing.T, from, n int) int {
	for base := from; base < from+1000; base += n {
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func TestCompose(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the container test builds images and takes minutes")
	}
	for _, tool := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here (apt-get install docker.io docker-compose); the container setup was not run", tool)
		}
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker engine answers (start dockerd): %v: %s; the container setup was not run", err, strings.TrimSpace(string(out)))
	}
	root := testenv.RepoRoot()
	if out, err := exec.Command(filepath.Join(root, "deploy", "docker", "base-images.sh")).CombinedOutput(); err != nil {
		t.Fatalf("base images: %v\n%s", err, out)
	}
	dir := t.TempDir()
	workers := filepath.Join(dir, "workers")
	build := exec.Command("go", "build", "-o", filepath.Join(workers, "cpu-llm-worker-rbee"), "./internal/testworker")
	build.Dir, build.Env = root, append(testenv.StockGoEnv(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build test worker: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(workers, "catalog.yaml"), []byte(catalog), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(workers, 0o755)
	agent, err := testenv.BuildAgent(dir)
	if err != nil {
		t.Fatal(err)
	}
	natsPort := freeRange(t, 29100, 1)
	workerBase := freeRange(t, natsPort+1, 10)
	s := &stack{t: t, project: fmt.Sprintf("hivetest%d", os.Getpid()), agent: agent,
		nats: "127.0.0.1:" + strconv.Itoa(natsPort)}
	s.env = append(os.Environ(), "HIVE_ID=h1", "HIVE_WORKERS="+workers, "HIVE_CATALOG=/opt/rbee/bin/catalog.yaml",
		"NATS_PUBLISH=127.0.0.1:"+strconv.Itoa(natsPort),
		fmt.Sprintf("WORKER_PUBLISH=127.0.0.1:%d-%d", workerBase, workerBase+9),
		"HIVE_QUEEN_URL=http://queen.example:7833")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("compose logs:\n%s", s.logs())
		}
		cmd := exec.Command("docker-compose", "-p", s.project, "down", "-v", "--rmi", "local", "-t", "5")
		cmd.Dir, cmd.Env = root, s.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("down: %v\n%s", err, out)
		}
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+s.project).Output()
		if len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("containers left: %s", out)
		}
	})

	t.Log(s.compose(15*time.Minute, "build"))
	s.compose(3*time.Minute, "up", "-d")
	s.waitAgent()

	// A worker spawned in the agent's container, reached from the host on
	// its published port.
	code, out := s.client("spawn", "--hive", "h1", "-m", "m", "-d", "cpu", "--id", "w1", "--wait", "ready")
	if code != 0 || !strings.Contains(out, "port:    9100") {
		t.Fatalf("spawn: exit %d\n%s", code, out)
	}
	t.Logf("spawn:\n%s", out)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", workerBase))
	if err != nil {
		t.Fatalf("worker from the host: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("worker /health from the host: %s", resp.Status)
	}

	// An intake command queued while the agent is stopped survives the
	// stack going down and up (JetStream on the nats-data volume), and runs.
	s.compose(2*time.Minute, "stop", "hive-agent")
	nc, err := nats.Connect(s.nats)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := `{"job_id":"kept-1","command_id":"kept-1","worker_id":"w2","model_id":"m","device":"cpu","wait":"alive"}`
	if _, err := js.Publish(ctx, "hive.h1.intake.worker.spawn", []byte(body), jetstream.WithMsgID("kept-1")); err != nil {
		t.Fatalf("intake publish: %v", err)
	}
	nc.Close()
	s.compose(3*time.Minute, "down", "-t", "5")
	s.compose(3*time.Minute, "up", "-d")
	s.waitAgent()
	code, out = s.client("job", "kept-1", "-f", "--timeout", "60s")
	if code != 0 || !strings.Contains(out, `"worker_id":"w2"`) {
		t.Fatalf("job kept-1 after down and up: exit %d\n%s", code, out)
	}
	t.Logf("job kept-1 after down and up:\n%s", out)
	code, out = s.client("ls", "--hive", "h1")
	if code != 0 || !strings.Contains(out, "w2") {
		t.Errorf("ls after the intake command: exit %d\n%s", code, out)
	}
	t.Logf("ls:\n%s", out)
}
