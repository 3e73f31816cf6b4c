package testenv

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// PrebuiltWorkerEnv names a test worker built beforehand for the target
// (GOOS=windows go build ./internal/testworker), for test binaries that
// run where no Go toolchain is, such as under Wine (see scripts/wine-test).
const PrebuiltWorkerEnv = "HIVE_TEST_WORKER_EXE"

// copyPrebuiltWorker installs the prebuilt test worker into dir under every
// worker binary name, with .exe.
func copyPrebuiltWorker(dir string) error {
	src := os.Getenv(PrebuiltWorkerEnv)
	if src == "" {
		return fmt.Errorf("build test worker: no Go toolchain under Wine; set %s to a Windows build of internal/testworker", PrebuiltWorkerEnv)
	}
	for _, name := range WorkerBinaries {
		if err := copyFile(src, filepath.Join(dir, name+".exe")); err != nil {
			return fmt.Errorf("install test worker: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
