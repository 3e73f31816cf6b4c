package catalog

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Summary describes the catalog for `hive-agent catalog check`: one line per
// type (where it comes from, devices, binary, readiness, restart policy,
// pinning), then each type's description, and the default type of each
// device kind.
func (c *Catalog) Summary() string {
	var b strings.Builder
	names := c.Names()
	fmt.Fprintf(&b, "catalog %s: %d worker types\n", c.Source, len(names))
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TYPE\tSOURCE\tDEVICES\tBINARY\tHEALTH\tWAIT\tREADY/STALL\tRESTART\tPIN_GPU")
	for _, n := range names {
		t := c.types[n]
		wait := t.Wait
		if wait == "" {
			wait = "(agent)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s %d%s\t%s\t%s/%s\t%s\t%t\n",
			n, t.Source, strings.Join(t.Devices, ","), t.Binary,
			t.HealthPath, t.ReadyStatus, loading(t.LoadingStatus), wait,
			orAgent(t.ReadyTimeout.String(), t.ReadyTimeout == 0), orAgent(t.StallTimeout.String(), t.StallTimeout == 0),
			restart(t), t.PinGPU)
	}
	w.Flush()
	w = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TYPE\tDESCRIPTION")
	for _, n := range names {
		fmt.Fprintf(w, "%s\t%s\n", n, orAgent(c.types[n].Description, c.types[n].Description == ""))
	}
	w.Flush()
	fmt.Fprintf(&b, "defaults: cpu=%s cuda=%s metal=%s\n", c.defaults[KindCPU], c.defaults[KindCUDA], c.defaults[KindMetal])
	return b.String()
}

func loading(codes []int) string {
	if len(codes) == 0 {
		return ""
	}
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = fmt.Sprint(c)
	}
	return " (loading " + strings.Join(s, ",") + ")"
}

func orAgent(s string, unset bool) string {
	if unset {
		return "-"
	}
	return s
}

func restart(t Type) string {
	if t.Restart == RestartOnFailure {
		return fmt.Sprintf("on-failure(max %d)", t.MaxRestarts)
	}
	return t.Restart
}
