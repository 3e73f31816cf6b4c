package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestParse_VRAMMiB(t *testing.T) {
	const base = "worker_types:\n  big:\n    binary: srv\n    devices: [cuda]\n"
	c, err := Parse("vram.yaml", []byte(base+"    vram_mib: 40000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.types["big"].VRAMMiB; got != 40000 {
		t.Errorf("VRAMMiB = %d, want 40000", got)
	}
	for _, bad := range []string{"lots", "-1", "1073741825", "1.5"} {
		_, err := Parse("vram.yaml", []byte(base+"    vram_mib: "+bad+"\n"))
		var e *Error
		if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Field != "worker_types.big.vram_mib" ||
			!strings.Contains(e.Problems[0].Msg, "whole number of MiB") {
			t.Errorf("vram_mib %s: got %v", bad, err)
		}
	}
}
