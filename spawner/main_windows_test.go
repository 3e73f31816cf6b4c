package spawner

import (
	"os"
	"testing"

	"github.com/rbee/hive-agent/internal/testenv"
)

// workerDir holds the test worker under every worker binary name (.exe).
var workerDir string

func TestMain(m *testing.M) {
	if os.Getenv(winHelperEnv) != "" {
		os.Exit(runWinHelper())
	}
	testenv.Main(m, func(dir string) error { workerDir = dir; return nil })
}
