package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"
)

// helpCmd is `hive-agent help [command...]`: the same as --help.
type helpCmd struct {
	Command []string `arg:"" optional:"" help:"The command, e.g. spawn or catalog check."`
}

func (h *helpCmd) run(parser *kong.Kong, stdout, stderr io.Writer) int {
	code := -1
	p := *parser // parse again with --help, exiting through code
	p.Exit = func(c int) {
		if code < 0 {
			code = c
		}
	}
	_, err := p.Parse(append(append([]string{}, h.Command...), "--help"))
	if code >= 0 { // the help was printed; what follows --help is moot
		return code
	}
	fmt.Fprintf(stderr, "hive-agent: help: %v\nRun 'hive-agent help' for the commands.\n", err)
	return exitUsage
}

// versionCmd is `hive-agent version`, the same as --version.
type versionCmd struct{}

// completionCmd is `hive-agent completion SHELL`: a script for the shell
// that asks this binary for completions. The completions themselves are
// computed by kongplete from the command definitions (every command, flag
// and enum value), when the shell runs the binary with COMP_LINE set.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

// completionScripts are kongplete's, which it only writes for the login
// shell; here the shell is named.
var completionScripts = map[string]string{
	"bash": "complete -C %[1]q %[2]s\n",
	"zsh":  "autoload -U +X bashcompinit && bashcompinit\ncomplete -C %[1]q %[2]s\n",
	"fish": `function __complete_%[2]s
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %[1]q
end
complete -f -c %[2]s -a "(__complete_%[2]s)"
`,
}

func (c *completionCmd) run(parser *kong.Kong, stdout, stderr io.Writer) int {
	bin, err := os.Executable()
	if err == nil {
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		fmt.Fprintf(stderr, "hive-agent: completion: cannot find this binary's path: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, completionScripts[c.Shell], bin, parser.Model.Name)
	return exitOK
}

// complete answers a shell's completion request (COMP_LINE is set) and
// reports whether it did; the caller then exits.
func complete(parser *kong.Kong) (code int, done bool) {
	if _, ok := os.LookupEnv("COMP_LINE"); !ok {
		return 0, false
	}
	code = -1
	kongplete.Complete(parser, kongplete.WithExitFunc(func(c int) {
		if code < 0 {
			code = c
		}
	}))
	return max(code, 0), code >= 0
}
