package catalog

import (
	"time"

	"github.com/goccy/go-yaml/ast"
)

// What a worker type does when its worker turns unhealthy.
const (
	OnUnhealthyEvent   = "event"
	OnUnhealthyRestart = "restart"
)

// Health is a worker type's health checking after ready (PROTOCOL v1.2
// "Health after ready"). Unset fields (nil, 0, "") take the agent's
// defaults (--health-interval, --health-timeout, --health-failures,
// --on-unhealthy).
type Health struct {
	// Interval between checks; 0 turns checking off.
	Interval *time.Duration
	// Timeout of one check.
	Timeout time.Duration
	// Failures in a row that make a worker unhealthy.
	Failures int
	// OnUnhealthy is OnUnhealthyEvent or OnUnhealthyRestart.
	OnUnhealthy string
}

// healthKeys are the type keys of Health; init adds them to typeKeys.
var healthKeys = map[string]typeKey{
	"health_interval": func(r *reader, t *Type, v ast.Node, f string) {
		var d time.Duration
		before := len(r.ps.list)
		readDuration(r, &d, v, f)
		if len(r.ps.list) == before {
			t.Health.Interval = &d
		}
	},
	"health_timeout": func(r *reader, t *Type, v ast.Node, f string) {
		before := len(r.ps.list)
		readDuration(r, &t.Health.Timeout, v, f)
		if len(r.ps.list) == before && t.Health.Timeout == 0 {
			line, col := pos(v)
			r.ps.add(line, col, f, "must be more than 0, e.g. 2s")
		}
	},
	"health_failures": func(r *reader, t *Type, v ast.Node, f string) {
		readInt(r, &t.Health.Failures, v, f, 1, 1000, "a whole number, 1-1000")
	},
	"on_unhealthy": func(r *reader, t *Type, v ast.Node, f string) {
		s, line, col, ok := scalarAt(r, v, f)
		switch {
		case !ok:
		case s != OnUnhealthyEvent && s != OnUnhealthyRestart:
			r.ps.add(line, col, f, "%q: want \"event\" or \"restart\"", s)
		default:
			t.Health.OnUnhealthy = s
		}
	},
}

func init() {
	for k, read := range healthKeys {
		typeKeys[k] = read
	}
}
