//go:build unix

// Command hive-bench measures the agent against what the operating system
// and NATS cost anyway: it builds the agent and the test worker, starts the
// agent with its embedded NATS server, and prints, in one run, each floor
// next to the agent's figure and their ratio.
//
//	go run ./cmd/hive-bench
//	go run ./cmd/hive-bench -compare /tmp/old-agent -only spawn,ready,swap
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee/hive-agent/internal/testenv"
)

// sections are the parts of a run, in order; -only picks some.
var sections = []string{"spawn", "ready", "swap", "list", "cycles", "growth"}

func main() {
	cfg := config{}
	only := ""
	flag.IntVar(&cfg.samples, "samples", 300, "sequential samples per latency figure")
	flag.DurationVar(&cfg.cycleTime, "cycle-time", 3*time.Second, "how long each throughput figure runs")
	flag.IntVar(&cfg.maxWorkers, "max-workers", 500, "largest list size (and workers held for the RSS figure)")
	flag.StringVar(&cfg.agentBin, "agent", "", "agent binary to measure (default: build ./cmd/hive-agent)")
	flag.StringVar(&cfg.compareBin, "compare", "", "second agent binary, run alternately with -agent in each repetition")
	flag.IntVar(&cfg.reps, "reps", 3, "repetitions of the whole run (each agent started afresh)")
	flag.DurationVar(&cfg.readyAfter, "ready-after", 2*time.Second, "when the time-to-ready workers become ready after exec")
	flag.IntVar(&cfg.readySamples, "ready-samples", 8, "samples per time-to-ready figure (each takes -ready-after)")
	flag.IntVar(&cfg.swapSamples, "swap-samples", 50, "samples of the model swap and its floor")
	flag.StringVar(&only, "only", strings.Join(sections, ","), "sections to run: "+strings.Join(sections, ","))
	flag.Parse()
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if !contains(sections, s) {
			fmt.Fprintf(os.Stderr, "hive-bench: unknown section %q (want some of %s)\n", s, strings.Join(sections, ","))
			os.Exit(2)
		}
		cfg.only[s] = true
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "hive-bench:", err)
		os.Exit(1)
	}
}

type config struct {
	samples, reps, readySamples, swapSamples int
	cycleTime, readyAfter                    time.Duration
	maxWorkers                               int
	agentBin, compareBin                     string
	only                                     map[string]bool
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
	bins := []string{cfg.agentBin}
	if cfg.compareBin != "" {
		bins = append(bins, cfg.compareBin)
	}
	worker := filepath.Join(dir, testenv.WorkerBinaries[0])
	printHeader(bins)
	results := make([]*report, len(bins))
	for i := range bins {
		results[i] = newReport()
	}
	for rep := range cfg.reps {
		// Alternate which build goes first, so a drift of the machine's
		// load favours neither.
		for k := range bins {
			i := k
			if rep%2 == 1 {
				i = len(bins) - 1 - k
			}
			fmt.Printf("\n== run %d of %d, agent %s\n", rep+1, cfg.reps, bins[i])
			if err := runOnce(cfg, bins[i], worker, dir, results[i]); err != nil {
				return fmt.Errorf("%s: %w", bins[i], err)
			}
		}
	}
	fmt.Printf("\n== summary over %d runs: median of the runs' medians [lowest-highest]\n", cfg.reps)
	summary(bins, results)
	fmt.Printf("total time %s\n", time.Since(began).Round(time.Second))
	return nil
}

// runOnce starts bin afresh and measures the chosen sections once.
func runOnce(cfg config, bin, worker, dir string, r *report) error {
	a, err := startAgent(bin, dir)
	if err != nil {
		return err
	}
	defer a.stop()
	idle := a.usage()
	r.line("agent idle: RSS %.1f MB, threads %d, open files %d", mb(idle.rss), idle.threads, idle.fds)
	r.value("RSS idle, MB", mb(idle.rss))
	r.columns()

	// The floors first, then the agent's figures, on the same server and binary.
	natsFloor, err := a.bareRequests(cfg.samples)
	if err != nil {
		return err
	}
	r.row("NATS request/reply (floor)", natsFloor, nil)
	if cfg.only["spawn"] {
		forkStart, forkStop, err := bareForkExec(worker, cfg.samples)
		if err != nil {
			return err
		}
		spawn, del, err := a.spawnDelete(cfg.samples)
		if err != nil {
			return err
		}
		r.row("fork/exec worker, own group (floor)", forkStart, nil)
		r.row("SIGTERM group + reap (floor)", forkStop, nil)
		r.row("spawn wait:exec -> reply", spawn, sum(natsFloor, forkStart))
		r.row("delete -> reply", del, sum(natsFloor, forkStop))
	}
	if cfg.only["ready"] {
		for _, quiet := range []bool{false, true} {
			s, err := a.readyOverhead(cfg.readySamples, cfg.readyAfter, quiet)
			if err != nil {
				return err
			}
			name := "ready overhead, worker logs when ready"
			if quiet {
				name = "ready overhead, silent worker"
			}
			r.row(fmt.Sprintf("%s (%s)", name, cfg.readyAfter), s, nil)
		}
	}
	if cfg.only["swap"] {
		floor, err := bareSwaps(worker, cfg.swapSamples)
		if err != nil {
			return err
		}
		s, err := a.swaps(cfg.swapSamples)
		if err != nil {
			return err
		}
		floor = sum(floor, sum(natsFloor, natsFloor))
		r.row("swap: SIGTERM+reap+fork/exec+listen+2 NATS (floor)", floor, nil)
		r.row("swap: delete + spawn wait:ready, same port", s, floor)
	}
	if cfg.only["list"] {
		for i, n := range []int{10, 100, cfg.maxWorkers} {
			if i == 2 && n <= 100 {
				break // -max-workers of 100 or less: that size was measured
			}
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
	}
	if cfg.only["cycles"] {
		r.line("%-52s %10s %10s %8s", "spawn+delete cycles", "agent/s", "bare/s", "ratio")
		for _, n := range []int{1, 4, 16} {
			agent, err := a.cycles(n, cfg.cycleTime)
			if err != nil {
				return err
			}
			bare, err := bareCycles(worker, n, cfg.cycleTime)
			if err != nil {
				return err
			}
			name := fmt.Sprintf("%d requesters / %d bare loops", n, n)
			r.line("%-52s %10.0f %10.0f %8.2f", name, agent, bare, agent/bare)
			r.value("cycles/s ratio, "+name, agent/bare)
		}
	}
	if cfg.only["growth"] {
		// Up to 10,000 commands (the agent's republish window and caches
		// fill), then 10,000 more: what grows in the second half grows
		// with the commands.
		before := a.usage()
		if err := a.topUp(10000); err != nil {
			return err
		}
		mid := a.usage()
		if err := a.topUp(20000); err != nil {
			return err
		}
		after := a.usage()
		r.line("after %d and %d commands: threads %d -> %d -> %d, open files %d -> %d -> %d, RSS %.1f MB -> %.1f MB -> %.1f MB",
			10000, a.commands, before.threads, mid.threads, after.threads, before.fds, mid.fds, after.fds,
			mb(before.rss), mb(mid.rss), mb(after.rss))
		r.value("RSS after 10,000 commands, MB", mb(mid.rss))
		r.value("RSS after 20,000 commands, MB", mb(after.rss))
	}
	if out, _ := exec.Command("pgrep", "-f", worker).Output(); len(out) > 0 {
		return fmt.Errorf("workers left behind: %s", out)
	}
	return nil
}

func mb(b uint64) float64 { return float64(b) / 1e6 }
