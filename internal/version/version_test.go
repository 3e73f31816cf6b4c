package version

import "testing"

func TestSemVer(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v0.0.0-20261126181442-c65993125169", "0.0.0-20261126181442-c65993125169"},
		{"v0.0.0-20261126181442-c65993125169+dirty", "0.0.0-20261126181442-c65993125169+dirty"},
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.3.0-rc.1", "1.3.0-rc.1"},
		{"v1.2.4-0.20261126181442-c65993125169", "1.2.4-0.20261126181442-c65993125169"},
		{"0.1.0-dev", "0.1.0-dev"},
		{"(devel)", "0.0.0-devel"},
		{"", "0.0.0"},
		{"v1.2", "0.0.0-1.2"},
		{"v1.02.3", "0.0.0-1.x02.3"},
		{"weird build/ü", "0.0.0-weird-build"},
	} {
		if got := SemVer(tc.in); got != tc.want {
			t.Errorf("SemVer(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := SemVer(tc.in); !semVer.MatchString(got) {
			t.Errorf("SemVer(%q) = %q is not SemVer", tc.in, got)
		}
	}
}

func TestFromBuild(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", Fallback}, {"(devel)", Fallback}, {"v1.2.3", "v1.2.3"},
	} {
		if got := fromBuild(tc.in); got != tc.want {
			t.Errorf("fromBuild(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
