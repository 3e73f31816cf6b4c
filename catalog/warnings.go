package catalog

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// requesterPlaceholder is the template a spawn request fills freely (the
// model id); the worker id is a checked token and cannot carry code.
const requesterPlaceholder = "{model_id}"

// loaderVars are environment variables whose value chooses code that a
// process loads or runs: a {model_id} in them lets a spawn request choose it.
var loaderVars = []string{
	"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH",
	"PATH", "PYTHONPATH", "PYTHONSTARTUP", "NODE_OPTIONS", "PERL5LIB", "PERL5OPT", "RUBYOPT",
	"BASH_ENV", "ENV",
}

// codeFlags are, per interpreter, the flags whose next argument is code.
var codeFlags = map[string][]string{
	"sh": {"-c"}, "bash": {"-c"}, "dash": {"-c"}, "zsh": {"-c"}, "ksh": {"-c"}, "ash": {"-c"},
	"python": {"-c"}, "python3": {"-c"}, "perl": {"-e", "-E"}, "ruby": {"-e"}, "node": {"-e", "--eval"},
}

// Warnings lists what is valid but lets a spawn request choose code to
// run: a type whose interpreter runs {model_id} as code (sh -c, python
// -c, …), or whose env puts {model_id} into a loader variable such as
// LD_PRELOAD. One line each, "file:line: field: what", in type order.
func (c *Catalog) Warnings() []string {
	var out []string
	for _, n := range c.Names() {
		t := c.types[n]
		if t.Source == "builtin" {
			continue
		}
		bin := filepath.Base(t.Binary)
		for i := 1; i < len(t.Args); i++ {
			if slices.Contains(codeFlags[bin], t.Args[i-1]) && strings.Contains(t.Args[i], requesterPlaceholder) {
				out = append(out, fmt.Sprintf("%s: worker_types.%s.args[%d]: %s %s runs %s as a command: a spawn request then chooses code to run",
					t.Source, n, i, t.Binary, t.Args[i-1], requesterPlaceholder))
			}
		}
		keys := make([]string, 0, len(t.Env))
		for k := range t.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if slices.Contains(loaderVars, k) && strings.Contains(t.Env[k], requesterPlaceholder) {
				out = append(out, fmt.Sprintf("%s: worker_types.%s.env.%s: puts %s into %s: a spawn request then chooses code the worker loads",
					t.Source, n, k, requesterPlaceholder, k))
			}
		}
	}
	return out
}
