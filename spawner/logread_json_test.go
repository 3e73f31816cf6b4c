//go:build unix

package spawner

import (
	"encoding/json"
	"strings"
	"testing"
)

// Reads bounded by their JSON size return whole lines while they fit and
// cut a line too long at a character boundary; followed to the end, they
// return every byte once, whatever escapes the content needs.
func TestSpawner_ReadLogMaxJSON(t *testing.T) {
	long := strings.Repeat("é<&\x01\"x", 40) // 2-6 bytes each when encoded
	content := "short\r\n" + long + "\n" + strings.Repeat("ab\n", 30) + "tail\n"
	s, w := logSpawner(t, content)
	for _, maxJSON := range []int64{40, 64, 100, 1000} {
		var got strings.Builder
		from := int64(0)
		for from < int64(len(content)) {
			r, err := s.ReadLog(w, LogQuery{From: offset(from), MaxBytes: 1 << 20, MaxJSON: maxJSON})
			if err != nil {
				t.Fatal(err)
			}
			if r.Offset <= from {
				t.Fatalf("maxJSON %d: read at %d returned offset %d: no progress", maxJSON, from, r.Offset)
			}
			if b, _ := json.Marshal(r.Lines); int64(len(b)) > maxJSON {
				t.Fatalf("maxJSON %d: lines take %d bytes: %s", maxJSON, len(b), b)
			}
			// Rebuild the bytes read: whole lines end at a newline, a cut piece does not.
			piece := strings.Join(r.Lines, "\n")
			if content[r.Offset-1] == '\n' {
				piece += "\n"
			}
			if from == 0 && strings.HasPrefix(piece, "short\n") {
				piece = "short\r\n" + piece[len("short\n"):]
			}
			got.WriteString(piece)
			from = r.Offset
		}
		if got.String() != content {
			t.Errorf("maxJSON %d: followed content differs:\n%q\nwant\n%q", maxJSON, got.String(), content)
		}
	}
	// A lines read keeps the newest lines that fit.
	r, err := s.ReadLog(w, LogQuery{Lines: 10, MaxJSON: 20})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(r.Lines); len(r.Lines) == 0 || len(b) > 20 || r.Lines[len(r.Lines)-1] != "tail" {
		t.Errorf("lines read: got %q, want the newest lines within 20 bytes", r.Lines)
	}
}
