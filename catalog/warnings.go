package catalog

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// requesterPlaceholders are the placeholders whose value the spawn request
// chooses freely (ids are subject tokens, ports and devices are checked).
var requesterPlaceholders = []string{"model_id", "queen_url"}

// codeLoadingEnv are variables whose value names code that a process (or
// its dynamic linker, or its interpreter) loads and runs.
var codeLoadingEnv = []string{
	"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "DYLD_LIBRARY_PATH",
	"PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "NODE_OPTIONS", "NODE_PATH",
	"PERL5OPT", "PERL5LIB", "RUBYOPT", "RUBYLIB", "BASH_ENV", "ENV", "GCONV_PATH",
}

// interpreters run the argument after one of codeFlags as code.
var (
	interpreters = regexp.MustCompile(`^(sh|bash|dash|zsh|ksh|ash|busybox|python[0-9.]*|perl|ruby|node|php)$`)
	codeFlags    = []string{"-c", "-e", "--eval", "--command"}
)

// Warning is something a valid catalog allows that is likely a mistake or
// unsafe; `catalog check` prints them, the agent logs them.
type Warning struct {
	// Source is where the type is defined (file:line or builtin).
	Source string
	// Field is e.g. worker_types.llama.env.LD_PRELOAD.
	Field string
	Msg   string
}

func (w Warning) String() string { return w.Source + ": " + w.Field + ": " + w.Msg }

// Warnings lists, type by type, what the catalog allows but should not:
// a binary that find cannot locate (find nil: not checked), and a spawn
// request's {model_id} or {queen_url} in a variable that loads code or in
// the code an interpreter runs (`sh -c {model_id}`): a spawn request would
// then choose what code the worker runs.
func (c *Catalog) Warnings(find func(binary string) error) []Warning {
	var ws []Warning
	for _, name := range c.Names() {
		t := c.types[name]
		field := "worker_types." + name
		if find != nil {
			if err := find(t.Binary); err != nil {
				ws = append(ws, Warning{t.Source, field + ".binary", fmt.Sprintf("%v; a spawn of this type answers binary_not_found", err)})
			}
		}
		envs := make([]string, 0, len(t.Env))
		for k := range t.Env {
			envs = append(envs, k)
		}
		sort.Strings(envs)
		for _, k := range envs {
			if p := requesterIn(t.Env[k]); p != "" && slices.Contains(codeLoadingEnv, k) {
				ws = append(ws, Warning{t.Source, field + ".env." + k, fmt.Sprintf(
					"{%s} in %s: a spawn request then chooses code the worker loads; use a fixed path", p, k)})
			}
		}
		if !interpreters.MatchString(filepath.Base(t.Binary)) {
			continue
		}
		for i := 1; i < len(t.Args); i++ {
			if p := requesterIn(t.Args[i]); p != "" && slices.Contains(codeFlags, t.Args[i-1]) {
				ws = append(ws, Warning{t.Source, fmt.Sprintf("%s.args[%d]", field, i), fmt.Sprintf(
					"{%s} in the code `%s %s` runs: a spawn request then chooses the command to run; pass it as an argument of its own",
					p, filepath.Base(t.Binary), t.Args[i-1])})
			}
		}
	}
	return ws
}

// requesterIn names the first requester-chosen placeholder in s, or "".
func requesterIn(s string) string {
	for _, p := range requesterPlaceholders {
		if strings.Contains(s, "{"+p+"}") {
			return p
		}
	}
	return ""
}
