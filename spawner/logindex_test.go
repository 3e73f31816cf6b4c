package spawner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// offsetAt picks the size of the last checkpoint at or before a time, 0
// before the first, and skips lines it cannot read.
func TestOffsetAt(t *testing.T) {
	idx := "1000 10\ngarbage\n2000 25\n3000 40\n"
	for _, c := range []struct{ ms, want int64 }{{999, 0}, {1000, 10}, {1999, 10}, {2000, 25}, {2500, 25}, {9999, 40}} {
		if got := offsetAt(strings.NewReader(idx), c.ms); got != c.want {
			t.Errorf("offsetAt(%d) = %d, want %d", c.ms, got, c.want)
		}
	}
}

// The index stays bounded: past maxIndexBytes it keeps its newest entries.
func TestAppendCheckpointCompacts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.log.idx")
	n, prev := int64(0), int64(0)
	for ; ; n++ {
		if err := appendCheckpoint(p, 1_000_000+n, n); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < prev {
			break // compacted
		}
		prev = fi.Size()
		if n > 100_000 {
			t.Fatal("the index was never compacted")
		}
	}
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != keepIndexEntries || lines[len(lines)-1] != fmt.Sprintf("%d %d", 1_000_000+n, n) {
		t.Errorf("after compaction: %d lines ending %q, want %d ending with the newest", len(lines), lines[len(lines)-1], keepIndexEntries)
	}
	if got := offsetAt(strings.NewReader(string(b)), 1_000_000+n); got != n {
		t.Errorf("offsetAt the newest = %d, want %d", got, n)
	}
}
