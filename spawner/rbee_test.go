package spawner

import "strconv"

// rbeeArgs are the rbee worker contract's arguments, as the catalog's
// built-in types render them; the test worker takes them.
func rbeeArgs(spec Spec, port int) []string {
	return []string{
		"--worker-id", spec.WorkerID, "--model", spec.ModelID, "--device", spec.Device.Raw,
		"--port", strconv.Itoa(port), "--queen-url", spec.QueenURL,
	}
}

// rbee gives spec the rbee arguments when it has no command of its own,
// and the built-in type of its device when it names none, as commands
// does from the catalog.
func rbee(spec Spec) Spec {
	if spec.Command == nil {
		spec.Command = func(port int) ([]string, []string, error) { return rbeeArgs(spec, port), nil, nil }
	}
	if spec.WorkerType == "" {
		spec.WorkerType = WorkerType(spec.Device.Kind) + "-llm"
	}
	return spec
}
