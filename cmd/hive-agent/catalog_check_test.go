package main

import (
	"os/exec"
	"strings"
	"testing"
)

const warnCatalog = `worker_types:
  found:
    description: the test worker, found in --worker-dir
    binary: cpu-llm-worker-rbee
    devices: [cpu]
  nowhere:
    description: a server installed nowhere
    binary: no-such-server-7f3a
    devices: [cpu]
  preload:
    binary: cpu-llm-worker-rbee
    devices: [cpu]
    env:
      LD_PRELOAD: "/opt/plugins/{model_id}.so"
      MODEL: "{model_id}"
  shell:
    binary: /bin/sh
    devices: [cpu]
    args: [-c, "exec server --model {model_id}"]
  shellsafe:
    binary: /bin/sh
    devices: [cpu]
    args: [-c, 'exec server --model "$1"', server, "{model_id}"]
`

// catalog check prints each type's description, and warns (exit 0) about
// a binary found nowhere and about a spawn's {model_id} that would choose
// the code a worker runs.
func TestCatalogCheck_DescriptionsAndWarnings(t *testing.T) {
	file := writeFile(t, "warn.yaml", warnCatalog)
	cmd := exec.Command(agentBin, "catalog", "check", "--worker-dir", workerDir, file)
	cmd.Env = cliEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("catalog check: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{
		"\nTYPE       DESCRIPTION\n",
		"\ncpu-llm    rbee cpu worker\n",
		"\nfound      the test worker, found in --worker-dir\n",
		"\nnowhere    a server installed nowhere\n",
		"\npreload    -\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	var mine []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, file) {
			mine = append(mine, line)
		}
	}
	want := []string{
		"warning: " + file + ":6: worker_types.nowhere.binary: worker binary not found: no executable no-such-server-7f3a in " + workerDir + " and PATH (",
		"warning: " + file + ":10: worker_types.preload.env.LD_PRELOAD: {model_id} in LD_PRELOAD: a spawn request then chooses code the worker loads; use a fixed path",
		"warning: " + file + ":16: worker_types.shell.args[1]: {model_id} in the code `sh -c` runs: a spawn request then chooses the command to run; pass it as an argument of its own",
	}
	if len(mine) != len(want) {
		t.Fatalf("want %d warnings about %s, got:\n%s", len(want), file, stderr.String())
	}
	for i := range want {
		if !strings.HasPrefix(mine[i], want[i]) {
			t.Errorf("warning %d:\n got %q\nwant %q...", i, mine[i], want[i])
		}
	}
}
