package main

import (
	"fmt"
	"io"

	"github.com/rbee/hive-agent/catalog"
)

// catalogCmd groups the catalog tools.
type catalogCmd struct {
	Check catalogCheckCmd `cmd:"" help:"Validate a worker catalog file and list its types (exit 0), or print every problem with file:line:column and field (exit 1)."`
}

// catalogCheckCmd is `hive-agent catalog check FILE`: the same validation
// the agent runs on --catalog, without starting anything.
type catalogCheckCmd struct {
	File string `arg:"" type:"path" help:"The catalog file (YAML)."`
}

// run prints the summary of a valid file on stdout (exit 0) and its
// warnings on stderr, or every problem on stderr (exit 1). Exit 2 stays for bad command lines, so a
// script can tell "the file is wrong" from "the check was called wrong".
func (c *catalogCheckCmd) run(stdout, stderr io.Writer) int {
	cat, err := catalog.Load(c.File)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	fmt.Fprint(stdout, cat.Summary())
	for _, w := range cat.Warnings() {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	return exitOK
}
