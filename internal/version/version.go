// Package version says which build of hive-agent is running. Go stamps a
// build with whatever version its origin gives it: a VCS pseudo-version
// (v0.0.0-20261126181442-c65993125169, with +dirty for a modified tree) for
// `go build` in a git checkout, the module version (v1.2.3) for `go install
// m@v1.2.3`, "(devel)" or nothing otherwise. The NATS micro service wants
// strict SemVer without the leading "v"; SemVer derives one from any of these.
package version

import (
	"regexp"
	"runtime/debug"
	"strings"
)

// Fallback is the version of a build that carries none; set it with
// -ldflags "-X github.com/rbee/hive-agent/internal/version.Fallback=1.2.3".
var Fallback = "0.1.0-dev"

// semVer is the pattern nats.go's micro package checks a service version against.
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// String is the version the build carries, as Go stamped it (or Fallback).
func String() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return fromBuild(bi.Main.Version)
	}
	return Fallback
}

func fromBuild(v string) string {
	if v == "" || v == "(devel)" {
		return Fallback
	}
	return v
}

// SemVer turns any version string into one that is strict SemVer 2.0 with
// no leading "v": "v1.2.3" → "1.2.3", a pseudo-version keeps its date and
// hash as pre-release, and anything unparsable becomes 0.0.0-<cleaned>.
func SemVer(v string) string {
	s := strings.TrimPrefix(strings.TrimSpace(v), "v")
	if semVer.MatchString(s) {
		return s
	}
	// Keep what can be kept as pre-release identifiers.
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '.':
			return r
		}
		return '-'
	}, s)
	var ids []string
	for _, id := range strings.Split(clean, ".") {
		id = strings.Trim(id, "-")
		if id == "" {
			continue
		}
		if strings.Trim(id, "0123456789") == "" && len(id) > 1 && id[0] == '0' {
			id = "x" + id // numeric identifiers may not have leading zeros
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return "0.0.0"
	}
	out := "0.0.0-" + strings.Join(ids, ".")
	if !semVer.MatchString(out) {
		return "0.0.0"
	}
	return out
}
