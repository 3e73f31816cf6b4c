package catalog

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// typeKey reads one key of a worker type from its value node.
type typeKey func(r *reader, t *Type, v ast.Node, field string)

// typeKeys are the keys a worker type may have; any other key is an error.
var typeKeys = map[string]typeKey{
	"description":    func(r *reader, t *Type, v ast.Node, f string) { t.Description, _ = r.scalar(v, f) },
	"binary":         readBinary,
	"args":           readArgs,
	"env":            readEnv,
	"devices":        readDevices,
	"health_path":    readHealthPath,
	"ready_status":   func(r *reader, t *Type, v ast.Node, f string) { readStatus(r, &t.ReadyStatus, v, f) },
	"loading_status": readLoadingStatus,
	"wait":           readWait,
	"ready_timeout":  func(r *reader, t *Type, v ast.Node, f string) { readDuration(r, &t.ReadyTimeout, v, f) },
	"stall_timeout":  func(r *reader, t *Type, v ast.Node, f string) { readDuration(r, &t.StallTimeout, v, f) },
	"restart":        readRestart,
	"max_restarts": func(r *reader, t *Type, v ast.Node, f string) {
		readInt(r, &t.MaxRestarts, v, f, 0, 1000, "a whole number, 0-1000")
	},
	"pin_gpu": readPinGPU,
	"vram_mib": func(r *reader, t *Type, v ast.Node, f string) {
		readInt(r, &t.VRAMMiB, v, f, 0, 1<<30, "a whole number of MiB, 0-1073741824")
	},
}

func typeKeyNames() []string {
	names := make([]string, 0, len(typeKeys))
	for k := range typeKeys {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// readType applies the keys of one type's mapping to t and reports whether
// it has what every type needs.
func (c *Catalog) readType(r *reader, t *Type, e entry, field string) bool {
	before := len(r.ps.list)
	es, ok := r.entries(e.value, field)
	if !ok {
		return false
	}
	given := map[string]bool{}
	for _, k := range es {
		given[k.key] = true
		read, known := typeKeys[k.key]
		if !known {
			line, col := pos(k.keyAt)
			r.ps.add(line, col, field+"."+k.key, "unknown key; known keys: %s", strings.Join(typeKeyNames(), ", "))
			continue
		}
		read(r, t, k.value, field+"."+k.key)
	}
	line, col := pos(e.keyAt)
	if t.Binary == "" && !given["binary"] {
		r.ps.add(line, col, field+".binary", "missing: every worker type needs a binary")
	}
	if len(t.Devices) == 0 && !given["devices"] {
		r.ps.add(line, col, field+".devices", "missing: list the device kinds it runs on (%s)", strings.Join(Kinds, ", "))
	}
	if slices.Contains(t.LoadingStatus, t.ReadyStatus) {
		r.ps.add(line, col, field+".loading_status", "holds %d, the ready_status", t.ReadyStatus)
	}
	return len(r.ps.list) == before
}

// scalarAt is a scalar and the node to report its problems at.
func scalarAt(r *reader, v ast.Node, field string) (string, int, int, bool) {
	n := r.resolve(v, field)
	if n == nil {
		return "", 0, 0, false
	}
	s, ok := r.scalar(n, field)
	line, col := pos(n)
	return s, line, col, ok
}

func readBinary(r *reader, t *Type, v ast.Node, field string) {
	s, line, col, ok := scalarAt(r, v, field)
	switch {
	case !ok:
	case s == "":
		r.ps.add(line, col, field, "empty: give a file name or an absolute path")
	case placeholderRe.MatchString(s):
		r.ps.add(line, col, field, "%q: placeholders are not allowed in binary", s)
	case strings.ContainsRune(s, '/') && !filepath.IsAbs(s):
		r.ps.add(line, col, field, "%q: give a file name (looked up in --worker-dir, then PATH) or an absolute path", s)
	default:
		t.Binary = s
	}
}

func readArgs(r *reader, t *Type, v ast.Node, field string) {
	items, ok := r.sequence(v, field)
	if !ok {
		return
	}
	args := make([]string, 0, len(items))
	for i, item := range items {
		f := field + "[" + strconv.Itoa(i) + "]"
		s, line, col, ok := scalarAt(r, item, f)
		if !ok {
			continue
		}
		checkTemplate(r, s, line, col, f)
		args = append(args, s)
	}
	t.Args = args
}

var envKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func readEnv(r *reader, t *Type, v ast.Node, field string) {
	es, ok := r.entries(v, field)
	if !ok {
		return
	}
	env := make(map[string]string, len(es))
	for _, e := range es {
		f := field + "." + e.key
		line, col := pos(e.keyAt)
		switch {
		case !envKeyRe.MatchString(e.key):
			r.ps.add(line, col, f, "%q is not a valid variable name", e.key)
			continue
		case strings.HasPrefix(e.key, markerPrefix):
			r.ps.add(line, col, f, "%s* variables are the agent's worker marker", markerPrefix)
			continue
		}
		s, line, col, ok := scalarAt(r, e.value, f)
		if !ok {
			continue
		}
		checkTemplate(r, s, line, col, f)
		env[e.key] = s
	}
	t.Env = env
}

func readDevices(r *reader, t *Type, v ast.Node, field string) {
	items, ok := r.sequence(v, field)
	if !ok {
		return
	}
	var kinds []string
	for i, item := range items {
		f := field + "[" + strconv.Itoa(i) + "]"
		s, line, col, ok := scalarAt(r, item, f)
		switch {
		case !ok:
		case !slices.Contains(Kinds, s):
			r.ps.add(line, col, f, "unknown device kind %q; want %s", s, strings.Join(Kinds, ", "))
		case slices.Contains(kinds, s):
			r.ps.add(line, col, f, "%s is listed twice", s)
		default:
			kinds = append(kinds, s)
		}
	}
	t.Devices = kinds
}

func readHealthPath(r *reader, t *Type, v ast.Node, field string) {
	s, line, col, ok := scalarAt(r, v, field)
	switch {
	case !ok:
	case !strings.HasPrefix(s, "/") || strings.ContainsFunc(s, func(c rune) bool { return c <= ' ' || c == 0x7f }):
		r.ps.add(line, col, field, "%q: want a path starting with /, without spaces", s)
	default:
		t.HealthPath = s
	}
}

func readStatus(r *reader, dst *int, v ast.Node, field string) {
	readInt(r, dst, v, field, 100, 599, "an HTTP status, 100-599")
}

// readInt reads a whole number in lo-hi into dst; want says what is wanted.
func readInt(r *reader, dst *int, v ast.Node, field string, lo, hi int, want string) {
	s, line, col, ok := scalarAt(r, v, field)
	if !ok {
		return
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		r.ps.add(line, col, field, "%q: want %s", s, want)
		return
	}
	*dst = n
}

func readLoadingStatus(r *reader, t *Type, v ast.Node, field string) {
	items, ok := r.sequence(v, field)
	if !ok {
		return
	}
	codes := []int{}
	for i, item := range items {
		n := 0
		readStatus(r, &n, item, field+"["+strconv.Itoa(i)+"]")
		if n != 0 {
			codes = append(codes, n)
		}
	}
	t.LoadingStatus = codes
}

func readWait(r *reader, t *Type, v ast.Node, field string) {
	s, line, col, ok := scalarAt(r, v, field)
	switch {
	case !ok:
	case s != WaitExec && s != WaitAlive && s != WaitReady:
		r.ps.add(line, col, field, "%q: want exec, alive or ready", s)
	default:
		t.Wait = s
	}
}

func readDuration(r *reader, dst *time.Duration, v ast.Node, field string) {
	s, line, col, ok := scalarAt(r, v, field)
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		r.ps.add(line, col, field, "bad duration %q: want a number with a unit, e.g. 90s or 10m", s)
		return
	}
	*dst = d
}

func readRestart(r *reader, t *Type, v ast.Node, field string) {
	s, line, col, ok := scalarAt(r, v, field)
	switch {
	case !ok:
	case s != RestartNo && s != RestartOnFailure:
		r.ps.add(line, col, field, "%q: want \"no\" or \"on-failure\"", s)
	default:
		t.Restart = s
	}
}

func readPinGPU(r *reader, t *Type, v ast.Node, field string) {
	n := r.resolve(v, field)
	b, ok := n.(*ast.BoolNode)
	if !ok {
		if n != nil {
			line, col := pos(n)
			r.ps.add(line, col, field, "want true or false, found %s", describe(n))
		}
		return
	}
	t.PinGPU = b.Value
}
