package spawner

import (
	"os"
	"path/filepath"
	"strings"
)

// isExecutable reports whether p names a program: a regular file ending in
// .exe or .com, or p without the extension (worker names are given without
// one; os/exec adds it when it starts p).
func isExecutable(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	if ext == ".exe" || ext == ".com" {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular()
	}
	fi, err := os.Stat(p + ".exe")
	return err == nil && fi.Mode().IsRegular()
}
