package spawner

import (
	"context"
	"errors"
)

// Containment modes, as Config.Containment and Spawner.Containment name
// them. On Windows every worker is in a job object whatever the mode.
const (
	ContainmentAuto         = "auto"
	ContainmentCgroup       = "cgroup"
	ContainmentProcessGroup = "process-group"
	ContainmentJobObject    = "job-object"
)

// defaultContainment is what Spawner.Containment says without cgroups.
const defaultContainment = ContainmentJobObject

// cgroups do not exist on Windows; the zero value is the only one.
type cgroups struct{ mount, base string }

func probeCgroups() (cgroups, error) {
	return cgroups{}, errors.New("no cgroups on Windows: each worker is in a job object")
}

func (cgroups) enabled() bool    { return false }
func (cgroups) of(Worker) string { return "" }
func removeCgroup(string)        {}

// runningInItsCgroup: no cgroups on Windows (a worker's job object is
// opened by name instead, see job_windows.go).
func (s *Spawner) runningInItsCgroup(context.Context, string) (Worker, bool) { return Worker{}, false }
