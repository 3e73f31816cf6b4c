package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alecthomas/kong"
)

// didYouMean suggests a command for a parse error about an unexpected
// first argument: the agent is the default command, so kong takes a
// misspelt command for a stray argument of `run`.
func didYouMean(model *kong.Application, args []string, err error) string {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") || !strings.HasPrefix(err.Error(), "unexpected argument "+args[0]) {
		return ""
	}
	best, bestDist := "", 3 // at most two edits away
	for _, c := range model.Children {
		if d := editDistance(args[0], c.Name); d < bestDist {
			best, bestDist = c.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(", did you mean %q?", best)
}

// helpCommand is the --help that explains a parse error: the selected
// client command's own, or the agent's.
func helpCommand(err error) string {
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		if n := pe.Context.Selected(); n != nil && n.Name != "run" {
			return n.FullPath() + " --help" // e.g. hive-agent catalog check --help
		}
	}
	return "hive-agent --help"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
