package client

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// GPU is one GPU of an agent: memory in MiB as nvidia-smi reports it
// (-1 when unknown), and whether it is tainted (processes of an ended
// worker still hold memory on it, so it refuses spawns).
type GPU struct {
	// Device is what a spawn names (cuda:N); Index is its N.
	Device         string `json:"device"`
	Index          int    `json:"index"`
	UUID           string `json:"uuid"`
	Name           string `json:"name"`
	MemoryTotalMiB int64  `json:"memory_total_mib"`
	MemoryUsedMiB  int64  `json:"memory_used_mib"`
	MemoryFreeMiB  int64  `json:"memory_free_mib"`
	Tainted        bool   `json:"tainted"`
	TaintedPIDs    []int  `json:"tainted_pids,omitempty"`
}

// WriteHiveGPUs writes the GPUs of every agent as the `hives --gpus`
// table: one row per GPU.
func WriteHiveGPUs(w io.Writer, hives []HiveInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HIVE\tDEVICE\tNAME\tUUID\tTOTAL\tUSED\tFREE\tTAINTED")
	for _, h := range hives {
		for _, g := range h.GPUs {
			taint := "no"
			if g.Tainted {
				taint = "yes"
				if len(g.TaintedPIDs) > 0 {
					taint += " (pids " + strings.Trim(fmt.Sprint(g.TaintedPIDs), "[]") + ")"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.HiveID, g.Device, g.Name, g.UUID,
				mibs(g.MemoryTotalMiB), mibs(g.MemoryUsedMiB), mibs(g.MemoryFreeMiB), taint)
		}
	}
	return tw.Flush()
}

func mibs(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprintf("%d MiB", n)
}
