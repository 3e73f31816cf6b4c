package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive-agent/wire"
)

const brokenCatalog = `worker_types:
  llama:
    binary: llama-server
    devices: [cuda, rocm]
    args: [--model, "{model_id}", --port, "{prot}"]
    helth_path: /health
`

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var brokenWant = []string{
	"broken.yaml:4:21: worker_types.llama.devices[1]: unknown device kind \"rocm\"",
	"broken.yaml:5:43: worker_types.llama.args[3]: unknown placeholder {prot}",
	"broken.yaml:6:5: worker_types.llama.helth_path: unknown key",
}

// A catalog the agent cannot use stops it before anything starts: exit 2,
// every problem with file, line, column and field.
func TestAgent_BadCatalogExits2(t *testing.T) {
	bad := writeFile(t, "broken.yaml", brokenCatalog)
	a := startBinary(t, t.TempDir(), "--hive-id", newHive(t), "--jetstream", "off", "--catalog", bad)
	if code := a.wait(t); code != exitUsage {
		t.Fatalf("exit %d, want %d; output:\n%s", code, exitUsage, a.out.String())
	}
	for _, w := range brokenWant {
		if !strings.Contains(a.out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, a.out.String())
		}
	}
	// The environment variable names a file the same way.
	cmd := exec.Command(agentBin, "--log-dir", t.TempDir(), "--jetstream", "off")
	cmd.Env = append(os.Environ(), "HIVE_CATALOG="+bad)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage || !strings.Contains(string(out), brokenWant[0]) {
		t.Errorf("HIVE_CATALOG=%s: %v, output:\n%s", bad, err, out)
	}
}

func TestCatalogCheck(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(agentBin, append([]string{"catalog", "check"}, args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), stdout.String(), stderr.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, stdout.String(), stderr.String()
	}
	good := filepath.Join(repoRoot(t), "examples", "catalog", "llama-server.yaml")
	code, out, errOut := run(good)
	if code != 0 || !strings.Contains(out, "6 worker types") || !strings.Contains(out, "llama-cuda ") {
		t.Errorf("check %s: exit %d, stdout:\n%s\nstderr:\n%s", good, code, out, errOut)
	}
	for _, line := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
		if line != "" && !strings.Contains(line, ".binary: worker binary not found: ") { // llama-server is not installed here
			t.Errorf("check %s: unexpected warning %q", good, line)
		}
	}
	code, out, errOut = run(writeFile(t, "broken.yaml", brokenCatalog))
	if code != 1 || out != "" {
		t.Errorf("check broken: exit %d (want 1), stdout %q", code, out)
	}
	for _, w := range brokenWant {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	// A type that lets the requester's model_id choose code to run is
	// valid, and warned about (issue 14): a shell's -c, a loader variable.
	risky := writeFile(t, "risky.yaml", riskyCatalog)
	code, out, errOut = run(risky)
	if code != 0 || !strings.Contains(out, "7 worker types") {
		t.Errorf("check risky: exit %d (want 0), stdout:\n%s", code, out)
	}
	for _, w := range []string{
		"warning: " + risky + ":2: worker_types.shell.args[1]: {model_id} in the code `sh -c` runs: a spawn request then chooses the command to run",
		"warning: " + risky + ":6: worker_types.preload.env.LD_PRELOAD: {model_id} in LD_PRELOAD: a spawn request then chooses code the worker loads",
		"warning: " + risky + ":11: worker_types.py.args[1]: {model_id} in the code `python3 -c` runs: a spawn request then chooses the command to run",
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	// The built-in types' binaries are not installed here: their warnings
	// are the binary check's, not counted.
	if n := strings.Count(errOut, "warning: "+risky); n != 3 {
		t.Errorf("%d warnings, want 3 (the safe type gets none):\n%s", n, errOut)
	}
	if code, _, errOut = run(filepath.Join(t.TempDir(), "missing.yaml")); code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("check of a missing file: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut = run(); code != exitUsage || !strings.Contains(errOut, "hive-agent catalog check --help") {
		t.Errorf("check without a file: exit %d, want %d and a hint naming the command; stderr %q", code, exitUsage, errOut)
	}
}

// The agent serves the file's types and lists them in its service
// metadata; a type the file lacks is refused, and the agent serves on.
func TestAgent_CatalogFile(t *testing.T) {
	hive := newHive(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	file := writeFile(t, "catalog.yaml", `worker_types:
  tw:
    binary: cpu-llm-worker-rbee
    devices: [cpu]
    args: [--worker-id, "{worker_id}", --model, "{model_id}", --device, "{device}", "--port={port}", --queen-url, "{queen_url}"]
`)
	a := startBinary(t, t.TempDir(), "--hive-id", hive, "--nats-listen", addr, "--jetstream", "off", "--catalog", file)
	a.waitLog(t, "serving worker commands")
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request("hive."+hive+".worker.spawn", []byte(`{"model_id":"m","device":"cpu","worker_type":"vllm"}`), 10e9)
	if err != nil || !strings.Contains(string(msg.Data), `"code":"bad_request"`) || !strings.Contains(string(msg.Data), "cpu-llm, cuda-llm, metal-llm, tw") {
		t.Errorf("unknown type: %v %s", err, msg.Data)
	}
	var sp wire.SpawnResult
	request(t, nc, "hive."+hive+".worker.spawn", `{"worker_id":"t1","model_id":"m","device":"cpu","worker_type":"tw"}`, &sp)
	if sp.WorkerType != "tw" {
		t.Errorf("spawn: %+v, want worker_type tw", sp)
	}
	info, err := nc.Request("$SRV.INFO.hive-agent", nil, 10e9)
	if err != nil || !strings.Contains(string(info.Data), `"worker_types":"cpu-llm,cuda-llm,metal-llm,tw"`) {
		t.Errorf("service info: %v %s", err, info.Data)
	}
	request(t, nc, "hive."+hive+".worker.delete", `{"worker_id":"t1"}`, nil)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// riskyCatalog has three types whose spawn request chooses code to run,
// and one that only passes the model id as an argument.
const riskyCatalog = `worker_types:
  shell:
    binary: /bin/sh
    devices: [cpu]
    args: ["-c", "{model_id}"]
  preload:
    binary: /bin/true
    devices: [cpu]
    env:
      LD_PRELOAD: "/models/{model_id}.so"
  py:
    binary: python3
    devices: [cpu]
    args: ["-c", "import sys; print('{model_id}')"]
  safe:
    binary: /bin/true
    devices: [cpu]
    args: ["--model", "{model_id}"]
    env:
      MODEL: "{model_id}"
`
