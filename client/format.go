package client

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// NaturalCompare orders strings as people read ids: runs of digits by
// their value, so w2 comes before w10. It returns -1, 0 or +1.
func NaturalCompare(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			da, db := digitRun(a), digitRun(b)
			ta, tb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if c := cmp.Compare(len(ta), len(tb)); c != 0 {
				return c
			}
			if c := strings.Compare(ta, tb); c != 0 {
				return c
			}
			// Equal values: fewer leading zeros first, so the order is total.
			if c := cmp.Compare(len(da), len(db)); c != 0 {
				return c
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// NaturalLess reports whether a sorts before b in natural order.
func NaturalLess(a, b string) bool { return NaturalCompare(a, b) < 0 }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) string {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i]
}

// SortWorkers sorts workers by hive, then worker id, in natural order.
func SortWorkers(ws []Worker) {
	slices.SortStableFunc(ws, func(a, b Worker) int {
		if c := NaturalCompare(a.HiveID, b.HiveID); c != 0 {
			return c
		}
		return NaturalCompare(a.WorkerID, b.WorkerID)
	})
}

// WriteTable writes workers as the ls table: a header, then one row per
// worker in the order given, columns aligned with spaces.
func WriteTable(w io.Writer, workers []Worker) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HIVE\tWORKER\tSTATE\tRESTARTS\tTYPE\tPID\tPORT\tDEVICE\tMODEL\tUPTIME\tMEMORY\tGPU MEMORY")
	for _, wk := range workers {
		pid, uptime, mem := strconv.Itoa(wk.PID), HumanDuration(wk.Uptime()), HumanBytes(wk.RSSBytes)
		if !wk.ExitedAt.IsZero() { // exited or backoff: no process
			pid, uptime, mem = "-", departedText(wk.WorkerStatus, time.Now()), "-"
		}
		vram := "-"
		if wk.GPUMemoryMiB != nil {
			vram = HumanBytes(uint64(max(0, *wk.GPUMemoryMiB)) << 20)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", wk.HiveID, wk.WorkerID, wk.State, wk.Restarts,
			wk.WorkerType, pid, wk.Port, wk.Device, wk.ModelID, uptime, mem, vram)
	}
	return tw.Flush()
}

// WriteHives writes agents as the hives table: hive, version, host,
// devices, workers, commands in flight (of the limit), uptime.
func WriteHives(w io.Writer, hives []HiveInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	stale := slices.ContainsFunc(hives, func(h HiveInfo) bool { return h.Stale })
	head := "HIVE\tVERSION\tHOST\tDEVICES\tWORKERS\tIN FLIGHT\tUPTIME"
	if stale {
		head += "\tSEEN"
	}
	fmt.Fprintln(tw, head)
	for _, h := range hives {
		workers := strconv.Itoa(h.Workers)
		if h.Workers < 0 {
			workers = "?"
		}
		if h.Stale {
			ago := time.Since(h.LastSeen).Round(time.Second)
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t%d/-\t-\tSTALE: last seen %s (%s ago)\n", h.HiveID, workers, h.InFlight,
				h.LastSeen.UTC().Format(time.RFC3339), HumanDuration(ago))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s", h.HiveID, h.Version, dash(h.Host),
			dash(strings.Join(h.Devices, ",")), workers, h.InFlight, h.MaxInFlight, HumanDuration(h.Uptime()))
		if stale {
			fmt.Fprint(tw, "\tnow")
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// EventLine is one narration event as a line: local time with
// milliseconds, the action padded to a column, the readable sentence.
func EventLine(e Event) string {
	return fmt.Sprintf("%s  %-22s  %s", e.TS.Local().Format("15:04:05.000"), e.Action, e.Human)
}

// HumanBytes is n in binary units: 512 B, 1.5 KiB, 12 MiB, 2.0 GiB (one
// decimal below 10 of a unit).
func HumanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	v, i := float64(n), -1
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}[i]
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, suffix)
	}
	return fmt.Sprintf("%.0f %s", v, suffix)
}

// HumanDuration is d in its two largest units: 45s, 4m10s, 2h05m, 3d04h.
func HumanDuration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 0:
		return "0s"
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}
