package client

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

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
