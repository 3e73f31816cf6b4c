//go:build unix

// Command hive-bench measures the agent against what the operating system
// and NATS cost anyway: it builds the agent and the test worker, starts the
// agent with its embedded NATS server, and prints, in one run, each floor
// next to the agent's figure and their ratio.
//
//	go run ./cmd/hive-bench
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

func main() {
	cfg := config{}
	flag.IntVar(&cfg.samples, "samples", 300, "sequential samples per latency figure")
	flag.DurationVar(&cfg.cycleTime, "cycle-time", 3*time.Second, "how long each throughput figure runs")
	flag.IntVar(&cfg.maxWorkers, "max-workers", 500, "largest list size (and workers held for the RSS figure)")
	flag.StringVar(&cfg.agentBin, "agent", "", "agent binary to measure (default: build ./cmd/hive-agent)")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "hive-bench:", err)
		os.Exit(1)
	}
}

type config struct {
	samples    int
	cycleTime  time.Duration
	maxWorkers int
	agentBin   string
}

func run(cfg config) error {
	began := time.Now()
	dir, err := os.MkdirTemp("", "hive-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := testenv.BuildWorker(dir); err != nil {
		return err
	}
	if cfg.agentBin == "" {
		// A plain build, as users run it (testenv.BuildAgent adds -race).
		cfg.agentBin = filepath.Join(dir, "hive-agent")
		build := exec.Command("go", "build", "-o", cfg.agentBin, "./cmd/hive-agent")
		build.Dir, build.Env = testenv.RepoRoot(), testenv.StockGoEnv()
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build agent: %w\n%s", err, out)
		}
	}
	worker := filepath.Join(dir, testenv.WorkerBinaries[0])
	a, err := startAgent(cfg.agentBin, dir)
	if err != nil {
		return err
	}
	defer a.stop()
	r := &report{}
	r.printHeader()

	idle := a.usage()
	r.line("agent idle: RSS %.1f MB, threads %d, open files %d", mb(idle.rss), idle.threads, idle.fds)

	// The floors first, then the agent's figures, on the same server and binary.
	natsFloor, err := a.bareRequests(cfg.samples)
	if err != nil {
		return err
	}
	forkStart, forkStop, err := bareForkExec(worker, cfg.samples)
	if err != nil {
		return err
	}
	spawn, del, err := a.spawnDelete(cfg.samples)
	if err != nil {
		return err
	}
	r.row("NATS request/reply (floor)", natsFloor, nil)
	r.row("fork/exec worker, own group (floor)", forkStart, nil)
	r.row("SIGTERM group + reap (floor)", forkStop, nil)
	r.row("spawn wait:exec -> reply", spawn, sum(natsFloor, forkStart))
	r.row("delete -> reply", del, sum(natsFloor, forkStop))

	for _, n := range []int{10, 100, cfg.maxWorkers} {
		if err := a.fill(n); err != nil {
			return err
		}
		l, err := a.lists(n, max(10, cfg.samples/10))
		if err != nil {
			return err
		}
		r.row(fmt.Sprintf("list, %d workers", n), l, natsFloor)
	}
	full := a.usage()
	r.line("agent with %d workers: RSS %.1f MB (peak %.1f MB)", cfg.maxWorkers, mb(full.rss), mb(full.hwm))
	if err := a.fill(0); err != nil {
		return err
	}

	r.line("")
	r.line("%-44s %10s %10s %8s", "spawn+delete cycles", "agent/s", "bare/s", "ratio")
	for _, n := range []int{1, 4, 16} {
		agent, err := a.cycles(n, cfg.cycleTime)
		if err != nil {
			return err
		}
		bare, err := bareCycles(worker, n, cfg.cycleTime)
		if err != nil {
			return err
		}
		r.line("%-44s %10.0f %10.0f %8.2f", fmt.Sprintf("%d requesters / %d bare loops", n, n), agent, bare, agent/bare)
	}

	before := a.usage()
	if err := a.topUp(10000); err != nil {
		return err
	}
	after := a.usage()
	r.line("")
	r.line("after %d commands: threads %d -> %d, open files %d -> %d, RSS %.1f MB -> %.1f MB",
		a.commands, before.threads, after.threads, before.fds, after.fds, mb(before.rss), mb(after.rss))
	r.line("total time %s", time.Since(began).Round(time.Second))
	if out, _ := exec.Command("pgrep", "-f", worker).Output(); len(out) > 0 {
		return fmt.Errorf("workers left behind: %s", out)
	}
	return nil
}

func mb(b uint64) float64 { return float64(b) / 1e6 }
