package catalog

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/rbee/hive-agent/subjects"
)

// Load reads and validates the catalog file at path (see Parse).
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return Parse(path, data)
}

// Parse validates a catalog file's content; name is used in messages. The
// result holds the built-in types, overridden by the file's types of the
// same name, plus the file's other types. On any problem it returns an
// *Error listing every problem found, each with line, column and field.
func Parse(name string, data []byte) (*Catalog, error) {
	ps := &problems{file: name}
	f, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		var yerr yaml.Error
		if errors.As(err, &yerr) && yerr.GetToken() != nil {
			p := yerr.GetToken().Position
			ps.add(p.Line, p.Column, "", "%s%s", yerr.GetMessage(), flowHint(data, p.Line))
		} else {
			ps.add(0, 0, "", "%v", err)
		}
		return nil, ps.err()
	}
	c := Builtin()
	c.Source = name
	var docs int
	for _, d := range f.Docs {
		if d.Body == nil {
			continue
		}
		if docs++; docs > 1 {
			line, col := pos(d.Body)
			if d.Start != nil {
				line, col = d.Start.Position.Line, d.Start.Position.Column
			}
			ps.add(line, col, "", "a catalog file holds one YAML document; this is a second one")
			continue
		}
		c.read(newReader(ps, d.Body), d.Body)
	}
	if docs == 0 {
		ps.add(1, 1, "", "empty file: want a worker_types: mapping")
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// topKeys are the keys of the file's top-level mapping, besides x-*
// keys, which are ignored so they can hold anchors shared by types.
var topKeys = []string{"default_types", "worker_types"}

func (c *Catalog) read(r *reader, root ast.Node) {
	es, ok := r.entries(root, "")
	if !ok {
		return
	}
	var defaults *entry
	at := map[string]entry{} // where each file type is defined
	for i, e := range es {
		switch {
		case e.key == "worker_types":
			c.readTypes(r, e, at)
		case e.key == "default_types":
			defaults = &es[i]
		case strings.HasPrefix(e.key, "x-"):
		default:
			line, col := pos(e.keyAt)
			r.ps.add(line, col, e.key, "unknown key; known top-level keys: %s, and x-* for anchors", strings.Join(topKeys, ", "))
		}
	}
	// default_types is read after all types, wherever it stands in the file.
	if defaults != nil {
		c.readDefaults(r, *defaults)
	}
	for _, kind := range Kinds {
		name := c.defaults[kind]
		if t := c.types[name]; !t.Accepts(kind) {
			line, col := pos(at[name].keyAt)
			r.ps.add(line, col, "worker_types."+name+".devices",
				"%s is the default type for %s devices but does not accept %s; keep %s in its devices or set default_types.%s",
				name, kind, kind, kind, kind)
		}
	}
}

func (c *Catalog) readTypes(r *reader, top entry, at map[string]entry) {
	es, ok := r.entries(top.value, "worker_types")
	if !ok {
		return
	}
	for _, e := range es {
		field := "worker_types." + e.key
		line, col := pos(e.keyAt)
		if err := subjects.ValidToken(e.key); err != nil {
			r.ps.add(line, col, field, "type name %q %v", e.key, err)
			continue
		}
		t, builtin := c.types[e.key]
		if !builtin || !t.Builtin {
			t = Type{
				Name: e.key, HealthPath: DefaultHealthPath, ReadyStatus: DefaultReadyStatus,
				LoadingStatus: slices.Clone(DefaultLoadingStatus), Restart: RestartNo,
				MaxRestarts: DefaultMaxRestarts, PinGPU: true,
			}
		}
		t.Builtin = false
		t.Source = fmt.Sprintf("%s:%d", r.ps.file, line)
		at[e.key] = e
		if c.readType(r, &t, e, field) {
			c.types[e.key] = t
		}
	}
}

func (c *Catalog) readDefaults(r *reader, top entry) {
	es, ok := r.entries(top.value, "default_types")
	if !ok {
		return
	}
	for _, e := range es {
		field := "default_types." + e.key
		if !slices.Contains(Kinds, e.key) {
			line, col := pos(e.keyAt)
			r.ps.add(line, col, field, "unknown device kind; want %s", strings.Join(Kinds, ", "))
			continue
		}
		name, line, col, ok := scalarAt(r, e.value, field)
		if !ok {
			continue
		}
		t, known := c.types[name]
		switch {
		case !known:
			r.ps.add(line, col, field, "unknown worker type %q; known types: %s", name, strings.Join(c.Names(), ", "))
		case !t.Accepts(e.key):
			r.ps.add(line, col, field, "worker type %s does not accept %s devices (it runs on %s)", name, e.key, strings.Join(t.Devices, ", "))
		default:
			c.defaults[e.key] = name
		}
	}
}

// unquotedBraceRe finds a plain (unquoted) list item that holds a '{'.
var unquotedBraceRe = regexp.MustCompile(`[\[,]\s*[^"'\s,\[\]{][^,\]"']*\{`)

// flowHint explains the commonest syntax error in a catalog: inside a
// [ ] list, { starts a mapping, so --port={port} must be quoted there.
func flowHint(data []byte, line int) string {
	lines := strings.Split(string(data), "\n")
	for i := line - 1; i >= 0 && i >= line-3 && i < len(lines); i-- {
		if unquotedBraceRe.MatchString(lines[i]) {
			return ` (inside a [ ] list, quote arguments that contain a {placeholder}, e.g. "--port={port}")`
		}
	}
	return ""
}
