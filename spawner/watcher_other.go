//go:build unix && !linux && !darwin

package spawner

import "syscall"

func watchIdent(*watch) (int, bool) { return -1, false }

func epollCreate() (int, error)  { return -1, syscall.ENOSYS }
func epollAdd(int, int) error    { return syscall.ENOSYS }
func epollDel(int, int)          {}
func epollWait(int, []int32) int { return 0 }
func closeFD(fd int)             { syscall.Close(fd) }

// childPoller is nil here: without waitid's WNOWAIT a child is waited for
// by a blocking cmd.Wait.
func childPoller(int) func() bool { return nil }
