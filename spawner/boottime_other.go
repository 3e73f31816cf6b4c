//go:build !linux

package spawner

// startTimeOffsetMS is zero where the process start time is reported exactly.
func startTimeOffsetMS() int64 { return 0 }
