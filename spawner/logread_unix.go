//go:build unix

package spawner

import "syscall"

// openNoFollow opens a log without following a symlink put in its place,
// and without blocking on a FIFO put there.
const openNoFollow = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
