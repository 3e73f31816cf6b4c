package commands

import (
	"reflect"
	"sort"
	"strings"

	"github.com/rbee/hive-agent/wire"
)

// unknownField is the bad_request for a key that v does not have. It names
// the closest known field when one is close enough to be a typo, so that
// "devcie" is answered with "did you mean device?".
func unknownField(key string, v any) *wire.Error {
	known := jsonFields(reflect.TypeOf(v).Elem())
	if best := closest(key, known); best != "" {
		return BadRequest(key, "unknown field; did you mean %s?", best)
	}
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	return BadRequest(key, "unknown field; known fields: %s", strings.Join(names, ", "))
}

// closest returns the known name at the smallest edit distance from key,
// or "" when none is within 2 edits (and fewer edits than key is long) or
// starts with key.
// Case is ignored, so "Device" suggests device.
func closest(key string, known map[string]bool) string {
	best, bestD := "", 3
	lower := strings.ToLower(key)
	for name := range known {
		d := editDistance(lower, name)
		if len(lower) >= 4 && strings.HasPrefix(name, lower) {
			d = min(d, 2) // "grace" for grace_ms: a unit left off
		}
		if d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	if bestD >= len(key) {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbours each cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20 // no field name is that long; skip the work
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
