package main

import (
	"errors"
	"fmt"
	neturl "net/url"
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

// defaultServer is the client commands' --server default: the agent's
// embedded server at its default address.
const defaultServer = "nats://127.0.0.1:4222"

// readyHint is the agent's ready line: a client command to try that works
// as written, so it names the server (-s) unless it is the client's
// default. Credentials in the URL are left out (pass them as the agent
// took them, e.g. --nats-creds).
func readyHint(hive, urls string) string {
	server := ""
	if u := withoutUserinfo(urls); u != defaultServer {
		server = " -s " + u
	}
	return "ready; try: hive-agent ls --hive " + hive + server +
		" (or: nats" + server + " req hive." + hive + ".worker.list '')"
}

// withoutUserinfo drops user:password@ or token@ from each URL of a
// comma-separated list.
func withoutUserinfo(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := neturl.Parse(p); err == nil && u.User != nil {
			u.User = nil
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// withScheme reads host:port without a scheme as nats://host:port, for
// each URL of a comma-separated list, as the nats CLI does.
func withScheme(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if p = strings.TrimSpace(p); p != "" && !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
