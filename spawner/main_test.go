package spawner

import (
	"fmt"
	"os"
	"testing"

	"github.com/rbee/hive-agent/internal/testenv"
)

// workerDir holds the test worker, built once under every worker binary name.
var workerDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "spawner-test-worker-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := testenv.BuildWorker(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	workerDir = dir
	return m.Run()
}
