//go:build unix

package spawner

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// logSpawner returns a Spawner whose log directory holds one log with content.
func logSpawner(t *testing.T, content string) (*Spawner, Worker) {
	t.Helper()
	s, err := New(Config{HiveID: "h1", LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.LogDir(), 0o750); err != nil {
		t.Fatal(err)
	}
	w := Worker{HiveID: "h1", WorkerID: "w1", LogPath: s.LogPathOf("w1")}
	if err := os.WriteFile(w.LogPath, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return s, w
}

func offset(n int64) *int64 { return &n }

func TestSpawner_ReadLog(t *testing.T) {
	const text = "one\ntwo\r\nthree\nfour" // "four" is unfinished
	tests := []struct {
		name       string
		q          LogQuery
		want       []string
		wantOffset int64
		truncated  bool
	}{
		{"last two whole lines", LogQuery{Lines: 2}, []string{"two", "three"}, 15, false},
		{"zero lines still gives the offset", LogQuery{Lines: 0}, []string{}, 15, false},
		{"from the start", LogQuery{From: offset(0), MaxBytes: 100}, []string{"one", "two", "three"}, 15, false},
		{"from the middle", LogQuery{From: offset(4), MaxBytes: 100}, []string{"two", "three"}, 15, false},
		{"max bytes stops at a line end", LogQuery{From: offset(0), MaxBytes: 9}, []string{"one", "two"}, 9, false},
		{"unfinished line waits", LogQuery{From: offset(15), MaxBytes: 100}, []string{}, 15, false},
		{"at the end", LogQuery{From: offset(19), MaxBytes: 100}, []string{}, 19, false},
		{"an over-long line is returned in pieces", LogQuery{From: offset(15), MaxBytes: 2}, []string{"fo"}, 17, false},
		{"beyond the end restarts at 0", LogQuery{From: offset(500), MaxBytes: 100}, []string{"one", "two", "three"}, 15, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, w := logSpawner(t, text)
			got, err := s.ReadLog(w, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Lines, tt.want) || got.Offset != tt.wantOffset || got.Truncated != tt.truncated || got.Size != int64(len(text)) {
				t.Errorf("got lines %q offset %d truncated %v size %d; want %q %d %v %d",
					got.Lines, got.Offset, got.Truncated, got.Size, tt.want, tt.wantOffset, tt.truncated, len(text))
			}
		})
	}
}

// A marker is only an environment variable; a path it names outside the
// log directory, directly or through a symlink, is never read.
func TestSpawner_ReadLogConfined(t *testing.T) {
	s, w := logSpawner(t, "inside\n")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(s.LogDir(), "link.log")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{secret, "/etc/hostname", link, s.LogDir() + "/../../" + filepath.Base(secret), s.LogDir(), "relative.log"} {
		t.Run(path, func(t *testing.T) {
			w := Worker{WorkerID: "forged", LogPath: path}
			got, err := s.ReadLog(w, LogQuery{Lines: 10})
			if err != nil || !got.Outside || len(got.Lines) != 0 {
				t.Errorf("ReadLog(%s) = %+v, %v; want outside, no lines", path, got, err)
			}
			tail, err := s.WorkerLogTail(w, 10)
			if err != nil || len(tail) != 0 {
				t.Errorf("WorkerLogTail(%s) = %q, %v; want no lines", path, tail, err)
			}
		})
	}
	// A symlink inside the directory to a file inside it is fine.
	inner := filepath.Join(s.LogDir(), "alias.log")
	if err := os.Symlink(w.LogPath, inner); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadLog(Worker{LogPath: inner}, LogQuery{Lines: 10})
	if err != nil || got.Outside || !slices.Equal(got.Lines, []string{"inside"}) {
		t.Errorf("ReadLog(alias inside) = %+v, %v; want the line", got, err)
	}
	missing, err := s.ReadLog(Worker{LogPath: s.LogPathOf("nobody")}, LogQuery{Lines: 10})
	if err != nil || !missing.Missing || missing.Outside {
		t.Errorf("ReadLog(missing) = %+v, %v; want missing", missing, err)
	}
}

func TestSpawner_ReadLogLongUnfinishedLine(t *testing.T) {
	long := strings.Repeat("x", lastLineScan+10)
	s, w := logSpawner(t, "first\n"+long)
	got, err := s.ReadLog(w, LogQuery{Lines: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got.Offset != got.Size || len(got.Lines) == 0 || !strings.HasSuffix(got.Lines[len(got.Lines)-1], "…") {
		t.Errorf("got offset %d of size %d, %d lines; want the cut long line and offset at the end", got.Offset, got.Size, len(got.Lines))
	}
}
