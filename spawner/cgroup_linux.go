package spawner

import (
	"syscall"

	"golang.org/x/sys/unix"
)

func isCgroup2(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// startInCgroup makes the process start inside the cgroup open as fd
// (clone3 with CLONE_INTO_CGROUP).
func startInCgroup(attr *syscall.SysProcAttr, fd int) {
	attr.UseCgroupFD, attr.CgroupFD = true, fd
}
