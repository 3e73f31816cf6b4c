//go:build unix

package spawner

import (
	"github.com/shirou/gopsutil/v4/process"
	"os"
	"testing"
)

func TestStartTimeMatchesGopsutil(t *testing.T) {
	want, err := (&process.Process{Pid: int32(os.Getpid())}).CreateTime()
	if err != nil {
		t.Fatal(err)
	}
	got, err := processStartTime(t.Context(), os.Getpid())
	if err != nil || got != want+startTimeOffsetMS() {
		t.Fatalf("got %d, want %d", got, want+startTimeOffsetMS())
	}
}
