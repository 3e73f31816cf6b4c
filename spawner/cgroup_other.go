//go:build unix && !linux

package spawner

func isCgroup2(string) bool { return false }
