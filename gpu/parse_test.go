package gpu

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fixtures = "../spawner/testdata/nvidia-h100-1gpu"

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return string(b)
}

const h100UUID = "GPU-f6a4b594-4260-b95b-6164-2bbedf0b43a9"

func TestParseList_RecordedH100(t *testing.T) {
	got := ParseList(fixture(t, "nvidia-smi-L.txt"))
	want := []GPU{{Index: 0, UUID: h100UUID, Name: "NVIDIA H100 80GB HBM3", MemoryTotalMiB: -1, MemoryUsedMiB: -1, MemoryFreeMiB: -1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseList = %+v, want %+v", got, want)
	}
	if got := ParseList(fixture(t, "nvidia-smi.txt")); len(got) != 0 {
		t.Errorf("ParseList(plain table) = %+v, want none", got)
	}
}

// queryFromRecorded rewrites the recorded
// index,name,uuid,memory.total,memory.used,pci.bus_id line (with units)
// into the agent's query order with and without units.
func queryFromRecorded(t *testing.T, units bool) string {
	t.Helper()
	f := strings.Split(strings.TrimSpace(fixture(t, "nvidia-smi-query.csv")), ", ")
	if len(f) != 6 {
		t.Fatalf("recorded query: %q", f)
	}
	total, used := f[3], f[4]
	free := "81559 MiB"
	if !units {
		total, used, free = strings.TrimSuffix(total, " MiB"), strings.TrimSuffix(used, " MiB"), "81559"
	}
	return strings.Join([]string{f[0], f[2], f[1], total, used, free}, ", ") + "\n"
}

func TestParseGPUs(t *testing.T) {
	want := []GPU{{Index: 0, UUID: h100UUID, Name: "NVIDIA H100 80GB HBM3", MemoryTotalMiB: 81559, MemoryUsedMiB: 0, MemoryFreeMiB: 81559}}
	for _, units := range []bool{false, true} {
		got, err := ParseGPUs(queryFromRecorded(t, units))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("units=%v: ParseGPUs = %+v, %v; want %+v", units, got, err, want)
		}
	}
	got, err := ParseGPUs("1, GPU-x, Weird, Name, 100, 10, 90\n")
	if err != nil || got[0].Name != "Weird, Name" || got[0].MemoryFreeMiB != 90 {
		t.Errorf("name with a comma: %+v, %v", got, err)
	}
	for _, bad := range []string{"0, GPU-x, H100, 1, 2\n", "x, GPU-x, H100, 1, 2, 3\n", "0, GPU-x, H100, [N/A], 2, 3\n"} {
		if _, err := ParseGPUs(bad); err == nil {
			t.Errorf("ParseGPUs(%q): no error", bad)
		}
	}
}

func TestParseApps(t *testing.T) {
	got, err := ParseApps("4242, " + h100UUID + ", 30210\n977, " + h100UUID + ", [N/A]\n")
	want := []App{{PID: 4242, GPUUUID: h100UUID, UsedMiB: 30210}, {PID: 977, GPUUUID: h100UUID, UsedMiB: 0}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseApps = %+v, %v; want %+v", got, err, want)
	}
	// The recorded machine had no compute process: nothing, or the
	// sentence some drivers print.
	for _, none := range []string{"", "No running processes found\n"} {
		if got, err := ParseApps(none); err != nil || len(got) != 0 {
			t.Errorf("ParseApps(%q) = %+v, %v", none, got, err)
		}
	}
	if _, err := ParseApps("abc, GPU-x, 1\n"); err == nil {
		t.Error("ParseApps(bad pid): no error")
	}
}

func TestVisible(t *testing.T) {
	base := ParseList(fixture(t, "nvidia-smi-L.txt"))[0]
	g1 := base
	g1.Index, g1.UUID = 1, "GPU-0b6e2c11-1111-2222-3333-444455556666"
	all := []GPU{base, g1}
	idx := func(gs []GPU) []int {
		var out []int
		for _, g := range gs {
			out = append(out, g.Index)
		}
		return out
	}
	tests := []struct {
		value string
		set   bool
		want  []int
	}{
		{"", false, []int{0, 1}},
		{"", true, nil},
		{"0", true, []int{0}},
		{"1", true, []int{1}},
		{"1,0", true, []int{1, 0}},
		{"-1", true, nil},
		{"0,-1,1", true, []int{0}},
		{"0,7,1", true, []int{0}},
		{g1.UUID, true, []int{1}},
		{"GPU-0b6e", true, []int{1}},
		{"GPU-", true, nil}, // a prefix of both: ambiguous
		{"MIG-abc", true, nil},
		{"0,0", true, []int{0}},
	}
	for _, tt := range tests {
		if got := idx(Visible(all, tt.value, tt.set)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Visible(%q, set=%v) = %v, want %v", tt.value, tt.set, got, tt.want)
		}
	}
}
