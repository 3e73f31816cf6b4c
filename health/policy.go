// Package health checks running workers after they became ready (PROTOCOL
// v1.2 "Health after ready"): one HTTP GET of each worker's health URL per
// interval, from one scheduler goroutine (a timer heap) and a small fixed
// pool of checkers, so that checking hundreds of workers costs neither a
// goroutine per worker nor a thread per worker. It decides nothing about
// processes: it reports each check's outcome and the transitions to
// unhealthy and back, and its caller acts (events, restarts).
package health

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of a Policy (PROTOCOL v1.2).
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 2 * time.Second
	DefaultFailures = 3
)

// What to do when a worker turns unhealthy.
const (
	OnUnhealthyEvent   = "event"
	OnUnhealthyRestart = "restart"
)

// Policy says how one worker is checked.
type Policy struct {
	// Interval between checks; 0: not checked.
	Interval time.Duration
	// Timeout of one check.
	Timeout time.Duration
	// Failures in a row that make the worker unhealthy.
	Failures int
	// OnUnhealthy is OnUnhealthyEvent or OnUnhealthyRestart.
	OnUnhealthy string
}

// DefaultPolicy is the policy of the contract's defaults.
func DefaultPolicy() Policy {
	return Policy{Interval: DefaultInterval, Timeout: DefaultTimeout, Failures: DefaultFailures, OnUnhealthy: OnUnhealthyEvent}
}

// Validate reports every problem with the policy.
func (p Policy) Validate() error {
	var errs []error
	if p.Interval < 0 {
		errs = append(errs, fmt.Errorf("health interval %s: want 0 (off) or more", p.Interval))
	}
	if p.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("health timeout %s: want more than 0", p.Timeout))
	}
	if p.Failures < 1 {
		errs = append(errs, fmt.Errorf("health failures %d: want at least 1", p.Failures))
	}
	if p.OnUnhealthy != OnUnhealthyEvent && p.OnUnhealthy != OnUnhealthyRestart {
		errs = append(errs, fmt.Errorf("on unhealthy %q: want event or restart", p.OnUnhealthy))
	}
	return errors.Join(errs...)
}
