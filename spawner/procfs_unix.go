//go:build unix

package spawner

import "bytes"

// readMarker returns the marker in pid's environment, or nil.
func readMarker(pid int) marker {
	b, err := readEnviron(pid)
	if err != nil || len(b) == 0 {
		return nil
	}
	return parseMarker(splitEnv(b))
}

func splitEnv(b []byte) []string {
	var env []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env
}
