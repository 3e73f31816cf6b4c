package main

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/rbee/hive-agent/catalog"
	"github.com/rbee/hive-agent/spawner"
)

// catalogCmd groups the catalog tools.
type catalogCmd struct {
	Check catalogCheckCmd `cmd:"" help:"Validate a worker catalog file and list its types (exit 0), or print every problem with file:line:column and field (exit 1)."`
}

// catalogCheckCmd is `hive-agent catalog check FILE`: the same validation
// the agent runs on --catalog, without starting anything, plus warnings.
type catalogCheckCmd struct {
	File      string `arg:"" type:"path" help:"The catalog file (YAML)."`
	WorkerDir string `name:"worker-dir" env:"HIVE_WORKER_DIR" help:"Directories (:-separated) the agent searches for worker binaries before PATH, as its --worker-dir."`
}

// run prints the summary of a valid file on stdout and its warnings on
// stderr (exit 0), or every problem on stderr (exit 1). Exit 2 stays for
// bad command lines, so a script can tell "the file is wrong" from "the
// check was called wrong".
func (c *catalogCheckCmd) run(stdout, stderr io.Writer) int {
	cat, err := catalog.Load(c.File)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	fmt.Fprint(stdout, cat.Summary())
	var dirs []string
	for _, d := range filepath.SplitList(c.WorkerDir) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	find := func(binary string) error {
		_, err := spawner.ResolveBinary(binary, dirs)
		return err
	}
	for _, w := range cat.Warnings(find) {
		t, _ := cat.Type(typeOf(w.Field))
		if runtime.GOOS != "darwin" && len(t.Devices) == 1 && t.Devices[0] == catalog.KindMetal && w.Field == "worker_types."+t.Name+".binary" {
			continue // a metal type cannot run here anyway
		}
		fmt.Fprintln(stderr, "warning: "+w.String())
	}
	return exitOK
}

// typeOf is the type name in a field such as worker_types.llama.env.X.
func typeOf(field string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(field, "worker_types."), ".")
	return name
}
