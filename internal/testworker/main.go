// Command testworker behaves like an rbee LLM worker for hive-agent's
// tests: it takes the worker flags, listens on its port and serves /health.
// What else it does is read from the model id, after its last '@':
//
//	crash            print a line and exit 3 at once
//	crash-after=D    exit 3 after duration D
//	ignore-term      ignore SIGTERM (logging each one)
//	fork             start a child process (same group) that sleeps
//	fork-ignore-term like fork, and the child ignores SIGTERM
//	escape           start a child that calls setsid (leaves the group, keeps the marker)
//	escape-clean     like escape, and the child also drops its whole environment
//	escape-cgroup    like escape, and the child also moves itself to the root of
//	                 the cgroup v2 tree (out of the worker's cgroup; needs root)
//	ready-after=D    /health answers 503 until D has passed; it prints when
//	                 that will be ("ready from unix ns N") at start and
//	                 "testworker: ready" at that time (as a model server
//	                 logs its listening line once loaded)
//	quiet-ready      with ready-after: no "testworker: ready" line
//	no-health        never answer /health with 200
//	lines=N          print N numbered log lines at start
//	log-every=D      print a "loading" line every D until ready (see ready-after)
//
// Its health can be switched from a test at any time: a request to
// /toggle?health=fail makes /health answer 500, health=hang makes it never
// answer (until the client gives up), health=ok makes it answer as above.
//
// Besides the worker flags it takes --health-path (default /health), where
// it serves its health, and --label, which it prints: a worker type of a
// catalog can pass both.
//
// e.g. --model "test/model@ignore-term,fork".
//
// On Windows, where there is no SIGTERM, CTRL_BREAK (and CTRL_C) take its
// place, "escape" starts the child in a new process group (it cannot leave
// the worker's job object), and pgid is printed as -1.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		arg := ""
		if len(os.Args) > 2 {
			arg = os.Args[2]
		}
		child(arg)
		return
	}
	workerID := flag.String("worker-id", "", "worker id")
	model := flag.String("model", "", "model id")
	device := flag.String("device", "", "device")
	port := flag.Int("port", 0, "port")
	queen := flag.String("queen-url", "", "queen url")
	healthPath := flag.String("health-path", "/health", "health path")
	label := flag.String("label", "", "printed at start")
	host := flag.String("host", "127.0.0.1", "address to listen on (0.0.0.0 in a container reached from outside)")
	flag.Parse()
	if *workerID == "" || *model == "" || *device == "" || *port == 0 || *queen == "" {
		fmt.Fprintln(os.Stderr, "testworker: --worker-id, --model, --device, --port and --queen-url are required")
		os.Exit(2)
	}
	opts := options(*model)
	for k := range opts {
		switch k {
		case "crash", "crash-after", "ignore-term", "fork", "fork-ignore-term", "escape", "escape-clean",
			"escape-cgroup", "ready-after", "no-health", "lines", "log-every", "quiet-ready":
		default:
			fmt.Fprintf(os.Stderr, "testworker: unknown option %q in model id %q\n", k, *model)
			os.Exit(2)
		}
	}
	fmt.Printf("testworker %s pid %d model %s device %s port %d queen %s\n", *workerID, os.Getpid(), *model, *device, *port, *queen)
	if *label != "" {
		fmt.Printf("testworker: label %q\n", *label)
	}
	if n, err := strconv.Atoi(opts["lines"]); err == nil {
		for i := 1; i <= n; i++ {
			fmt.Printf("line %d\n", i)
		}
	}
	if _, ok := opts["crash"]; ok {
		fmt.Fprintln(os.Stderr, "testworker: crashing at start as asked")
		os.Exit(3)
	}
	if d, err := time.ParseDuration(opts["crash-after"]); err == nil {
		time.AfterFunc(d, func() {
			fmt.Fprintln(os.Stderr, "testworker: crashing as asked")
			os.Exit(3)
		})
	}
	sigs := make(chan os.Signal, 1)
	if _, ok := opts["ignore-term"]; ok {
		// Caught rather than ignored, so each one shows in the log.
		ignored := make(chan os.Signal, 1)
		signal.Notify(ignored, stopSignals...)
		go func() {
			for range ignored {
				fmt.Println("testworker: ignored SIGTERM")
			}
		}()
		fmt.Println("testworker: ignoring SIGTERM")
	} else {
		signal.Notify(sigs, stopSignals...)
	}
	for _, mode := range []string{"fork", "fork-ignore-term", "escape", "escape-clean", "escape-cgroup"} {
		if _, ok := opts[mode]; ok {
			arg := ""
			switch mode {
			case "fork-ignore-term":
				arg = "ignore-term"
			case "escape-cgroup":
				arg = "escape-cgroup"
			}
			c := exec.Command(os.Args[0], "child", arg)
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
			if mode == "escape" || mode == "escape-clean" || mode == "escape-cgroup" {
				c.SysProcAttr = detached()
			}
			if mode == "escape-clean" {
				c.Env = []string{}
			}
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "testworker: fork:", err)
				os.Exit(5)
			}
			fmt.Printf("testworker: child pid %d\n", c.Process.Pid)
			go c.Wait()
		}
	}
	readyAt := time.Now()
	if d, err := time.ParseDuration(opts["ready-after"]); err == nil {
		readyAt = readyAt.Add(d)
		fmt.Printf("testworker: ready from unix ns %d\n", readyAt.UnixNano())
		if _, quiet := opts["quiet-ready"]; !quiet {
			time.AfterFunc(d, func() { fmt.Println("testworker: ready") })
		}
	}
	_, noHealth := opts["no-health"]
	if d, err := time.ParseDuration(opts["log-every"]); err == nil && d > 0 {
		go func() {
			for n := 1; noHealth || time.Now().Before(readyAt); n++ {
				fmt.Printf("loading: step %d\n", n)
				time.Sleep(d)
			}
		}()
	}
	l, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testworker: listen:", err)
		os.Exit(4)
	}
	fmt.Printf("testworker: listening on %s\n", l.Addr())
	mux := http.NewServeMux()
	var forced atomic.Value // "", "fail" or "hang": set through /toggle
	forced.Store("")
	mux.HandleFunc("/toggle", func(w http.ResponseWriter, r *http.Request) {
		h := r.URL.Query().Get("health")
		switch h {
		case "ok":
			h = ""
		case "fail", "hang":
		default:
			http.Error(w, "want health=ok, fail or hang", http.StatusBadRequest)
			return
		}
		forced.Store(h)
		fmt.Printf("testworker: health switched to %q\n", r.URL.Query().Get("health"))
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc(*healthPath, func(w http.ResponseWriter, r *http.Request) {
		switch forced.Load() {
		case "fail":
			http.Error(w, "switched off", http.StatusInternalServerError)
			return
		case "hang":
			<-r.Context().Done()
			return
		}
		if noHealth || time.Now().Before(readyAt) {
			http.Error(w, "loading", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	go http.Serve(l, mux)
	<-sigs
	// The time lets tests order the signal against what the agent published.
	fmt.Printf("testworker: SIGTERM received at unix ns %d\n", time.Now().UnixNano())
	fmt.Println("testworker: got SIGTERM, exiting")
	os.Exit(0)
}

func options(model string) map[string]string {
	opts := map[string]string{}
	i := strings.LastIndexByte(model, '@')
	if i < 0 {
		return opts
	}
	for _, o := range strings.Split(model[i+1:], ",") {
		k, v, _ := strings.Cut(o, "=")
		opts[k] = v
	}
	return opts
}

// child is the process fork and escape start. With "ignore-term" it
// ignores SIGTERM; with "escape-cgroup" it first moves itself to the root
// of the cgroup v2 tree, so it is in none of the worker's cgroups (it
// reports that before its pid, which tests wait for).
func child(arg string) {
	switch arg {
	case "ignore-term":
		signal.Ignore(stopSignals...)
	case "escape-cgroup":
		root, err := cgroup2Root()
		if err == nil {
			err = os.WriteFile(root+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "testworker child: leave cgroup:", err)
			os.Exit(6)
		}
		own, _ := os.ReadFile("/proc/self/cgroup")
		fmt.Printf("testworker child left its cgroup for %s (now %s)\n", root, strings.TrimSpace(string(own)))
		// Logged, so a test can tell a SIGTERM from a SIGKILL.
		term := make(chan os.Signal, 1)
		signal.Notify(term, stopSignals...)
		go func() {
			<-term
			fmt.Println("testworker child: got SIGTERM, exiting")
			os.Exit(0)
		}()
	}
	fmt.Printf("testworker child pid %d pgid %d\n", os.Getpid(), pgrp())
	for {
		time.Sleep(time.Hour)
	}
}

// cgroup2Root is where the cgroup v2 tree is mounted, from
// /proc/self/mountinfo.
func cgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(line, " - ")
		if f := strings.Fields(pre); ok && len(f) > 4 && strings.HasPrefix(post, "cgroup2 ") {
			return f[4], nil
		}
	}
	return "", fmt.Errorf("no cgroup2 file system mounted")
}
