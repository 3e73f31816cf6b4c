package spawner

import (
	"slices"
	"testing"
)

// procargs2 builds a kern.procargs2 value as macOS's kernel lays it out
// (argc, exec path, NUL padding, argv, envp, then the "apple" strings).
// Written from the format, not recorded on a Mac.
func procargs2(argc uint32, path string, pad int, rest ...string) []byte {
	b := []byte{byte(argc), byte(argc >> 8), byte(argc >> 16), byte(argc >> 24)}
	b = append(b, path...)
	b = append(b, make([]byte, 1+pad)...)
	for _, s := range rest {
		b = append(append(b, s...), 0)
	}
	return b
}

func TestParseProcargs2(t *testing.T) {
	b := procargs2(3, "/Users/u/workers/metal-llm-worker-rbee", 5,
		"metal-llm-worker-rbee", "--port", "9100",
		"HOME=/Users/u", "HIVE_AGENT_HIVE_ID=h1", "HIVE_AGENT_WORKER_ID=w1", "",
		"ptr_munge=", "main_stack=")
	args, env, err := parseProcargs2(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"metal-llm-worker-rbee", "--port", "9100"}; !slices.Equal(args, want) {
		t.Errorf("args = %q, want %q", args, want)
	}
	if want := []string{"HOME=/Users/u", "HIVE_AGENT_HIVE_ID=h1", "HIVE_AGENT_WORKER_ID=w1"}; !slices.Equal(env, want) {
		t.Errorf("env = %q, want %q (the apple strings after the empty one are not environment)", env, want)
	}
	if got := string(joinNUL(env)); got != "HOME=/Users/u\x00HIVE_AGENT_HIVE_ID=h1\x00HIVE_AGENT_WORKER_ID=w1\x00" {
		t.Errorf("joinNUL = %q", got)
	}
}

func TestParseProcargs2_Malformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":            nil,
		"argc only":        {1, 0, 0, 0},
		"fewer args":       procargs2(4, "/bin/x", 0, "x", "y"),
		"path without NUL": append([]byte{0, 0, 0, 0}, "/bin/x"...),
	} {
		if _, _, err := parseProcargs2(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
