package spawner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

func (spec Spec) command(port int) (args, env []string, err error) {
	if spec.Command == nil {
		return nil, nil, fmt.Errorf("%w: worker %s: no command to start it with", ErrSpawn, spec.WorkerID)
	}
	return spec.Command(port)
}

// StartEnv is a worker's environment: the agent's own without its NATS_*
// and HIVE_* settings, then extra (a worker type's variables, such as the
// CUDA_VISIBLE_DEVICES that pins a GPU), then w's marker. A later entry
// replaces an earlier one of the same name, so the type's variables win
// over inherited ones, and nothing can forge or drop the marker.
func StartEnv(agent, extra []string, w Worker) []string {
	out := workerEnv(agent)
	for _, layer := range [][]string{extra, markerEnv(w)} {
		for _, kv := range layer {
			name, _, _ := strings.Cut(kv, "=")
			out = slices.DeleteFunc(out, func(e string) bool { return strings.HasPrefix(e, name+"=") })
			out = append(out, kv)
		}
	}
	return out
}

// shellWords joins args for the log, quoting those that a reader would
// otherwise split (spaces, quotes, empty), so one argument reads as one.
func shellWords(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\") {
			out[i] = strconv.Quote(a)
		}
	}
	return strings.Join(out, " ")
}
