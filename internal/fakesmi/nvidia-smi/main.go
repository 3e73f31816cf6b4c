//go:build unix

// Command nvidia-smi is a fake of NVIDIA's for hive-agent's tests (see
// package fakesmi): it answers -L, --query-gpu and --query-compute-apps
// from state.json beside itself, and logs each call to state.json.calls.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type gpu struct {
	Index          int    `json:"index"`
	UUID           string `json:"uuid"`
	Name           string `json:"name"`
	MemoryTotalMiB int64  `json:"memory_total_mib"`
	MemoryUsedMiB  int64  `json:"memory_used_mib"`
}

type app struct {
	PID     int    `json:"pid"`
	GPUUUID string `json:"gpu_uuid"`
	UsedMiB int64  `json:"used_memory_mib"`
}

type state struct {
	GPUs     []gpu  `json:"gpus"`
	Apps     []app  `json:"apps"`
	Hang     string `json:"hang"`
	ReapDead bool   `json:"reap_dead"`
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "__hold" {
		time.Sleep(time.Hour)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		fail(err)
	}
	path := filepath.Join(filepath.Dir(exe), "state.json")
	logCall(path)
	b, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		fail(err)
	}
	switch st.Hang {
	case "child":
		hold(path)
		time.Sleep(time.Hour)
	case "sleep":
		time.Sleep(time.Hour)
	}
	if st.ReapDead {
		var live []app
		for _, a := range st.Apps {
			// Signal 0 to a zombie succeeds; its stat says Z.
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.PID))
			if syscall.Kill(a.PID, 0) == nil && err == nil && !strings.Contains(string(b), ") Z ") {
				live = append(live, a)
			}
		}
		st.Apps = live
	}
	args := strings.Join(os.Args[1:], " ")
	switch {
	case args == "-L":
		for _, g := range st.GPUs {
			fmt.Printf("GPU %d: %s (UUID: %s)\n", g.Index, g.Name, g.UUID)
		}
	case strings.Contains(args, "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free") && strings.Contains(args, "nounits"):
		for _, g := range st.GPUs {
			used := g.MemoryUsedMiB
			for _, a := range st.Apps {
				if a.GPUUUID == g.UUID {
					used += a.UsedMiB
				}
			}
			fmt.Printf("%d, %s, %s, %d, %d, %d\n", g.Index, g.UUID, g.Name, g.MemoryTotalMiB, used, g.MemoryTotalMiB-used)
		}
	case strings.Contains(args, "--query-compute-apps=pid,gpu_uuid,used_memory") && strings.Contains(args, "nounits"):
		for _, a := range st.Apps {
			fmt.Printf("%d, %s, %d\n", a.PID, a.GPUUUID, a.UsedMiB)
		}
	default:
		fmt.Fprintf(os.Stderr, "fake nvidia-smi: unsupported arguments %q\n", args)
		os.Exit(2)
	}
}

// hold starts a child in its own session that inherits stdout and sleeps.
func hold(statePath string) {
	c := exec.Command(os.Args[0], "__hold")
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		fail(err)
	}
	f, err := os.OpenFile(statePath+".held", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintln(f, c.Process.Pid)
		f.Close()
	}
}

func logCall(statePath string) {
	f, err := os.OpenFile(statePath+".calls", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintln(f, strings.Join(os.Args[1:], " "))
		f.Close()
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fake nvidia-smi:", err)
	os.Exit(1)
}
