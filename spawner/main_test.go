package spawner

import (
	"testing"

	"github.com/rbee/hive-agent/internal/testenv"
)

// workerDir holds the test worker, built once under every worker binary name.
var workerDir string

func TestMain(m *testing.M) {
	testenv.Main(m, func(dir string) error { workerDir = dir; return nil })
}
