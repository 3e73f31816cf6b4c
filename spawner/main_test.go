//go:build unix

package spawner

import (
	"os"
	"testing"

	"github.com/rbee/hive-agent/internal/testenv"
)

// workerDir holds the test worker, built once under every worker binary name.
var workerDir string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	testenv.Main(m, func(dir string) error { workerDir = dir; return nil })
}
