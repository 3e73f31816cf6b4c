//go:build unix

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadyFrom_ReadsTheWorkersReadyLine(t *testing.T) {
	log := filepath.Join(t.TempDir(), "w.log")
	os.WriteFile(log, []byte("--- hive-agent: starting worker w\ntestworker w pid 1\ntestworker: ready from unix ns 1700000000123456789\ntestworker: ready\n"), 0o600)
	got, err := readyFrom(log)
	if err != nil || !got.Equal(time.Unix(0, 1700000000123456789)) {
		t.Fatalf("readyFrom = %v, %v; want %v", got, err, time.Unix(0, 1700000000123456789))
	}
}

func TestReadyFrom_NoLineIsAnError(t *testing.T) {
	log := filepath.Join(t.TempDir(), "w.log")
	os.WriteFile(log, []byte("testworker w pid 1\n"), 0o600)
	if _, err := readyFrom(log); err == nil || !strings.Contains(err.Error(), "no ready line") {
		t.Fatalf("readyFrom of a log without the line: %v, want \"no ready line\"", err)
	}
}

// The summary gives, per figure and build, the median of the runs and
// their lowest and highest; a figure a build lacks shows as "-".
func TestSummary_MedianAndSpreadPerBuild(t *testing.T) {
	a, b := newReport(), newReport()
	for _, v := range []float64{3, 1, 2} {
		a.value("delete, median ms", v)
	}
	for _, v := range []float64{10, 30, 20} {
		b.value("delete, median ms", v)
	}
	a.value("only in A", 5)
	out := capture(t, func() { summary([]string{"a", "b"}, []*report{a, b}) })
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("summary:\n%s\nwant a header and 2 rows", out)
	}
	if f := strings.Fields(lines[1]); strings.Join(f[len(f)-4:], " ") != "2 [1-3] 20 [10-30]" {
		t.Errorf("row %q, want A 2 [1-3] and B 20 [10-30]", lines[1])
	}
	if !strings.HasSuffix(lines[2], "-") {
		t.Errorf("row %q, want - for the build without the figure", lines[2])
	}
}

func capture(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	f()
	os.Stdout = old
	w.Close()
	var buf bytes.Buffer
	buf.ReadFrom(r)
	return buf.String()
}
