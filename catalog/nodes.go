package catalog

import (
	"github.com/goccy/go-yaml/ast"
	"strings"
)

// reader walks the syntax tree of one file. Working on the tree rather than
// decoding into structs keeps every node's line and column at hand, so
// each problem points at the exact key or value, and one pass finds them all.
type reader struct {
	ps      *problems
	anchors map[string]ast.Node
}

func newReader(ps *problems, root ast.Node) *reader {
	r := &reader{ps: ps, anchors: map[string]ast.Node{}}
	ast.Walk(anchorCollector(r.anchors), root)
	return r
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// pos is where a node starts.
func pos(n ast.Node) (line, col int) {
	if n == nil || n.GetToken() == nil {
		return 0, 0
	}
	p := n.GetToken().Position
	return p.Line, p.Column
}

// resolve looks through anchors, aliases and tags to the node that holds
// the value. It returns nil (and records a problem) for an unknown alias.
func (r *reader) resolve(n ast.Node, field string) ast.Node {
	for i := 0; n != nil && i < 32; i++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			name := v.Value.GetToken().Value
			target, ok := r.anchors[name]
			if !ok {
				line, col := pos(v)
				r.ps.add(line, col, field, "alias *%s names no anchor", name)
				return nil
			}
			n = target
		default:
			return n
		}
	}
	return n
}

// entry is one key of a mapping, with the nodes to report problems at.
type entry struct {
	key   string
	keyAt ast.Node
	value ast.Node
}

// entries lists a mapping's keys in file order, those merged in with
// `<<: *anchor` first so that the mapping's own keys override them. ok is
// false (with a problem recorded) when n is not a mapping; null counts as
// an empty mapping.
func (r *reader) entries(n ast.Node, field string) (es []entry, ok bool) {
	n = r.resolve(n, field)
	switch m := n.(type) {
	case nil:
		return nil, false
	case *ast.NullNode:
		return nil, true
	case *ast.MappingValueNode:
		return r.mappingEntries([]*ast.MappingValueNode{m}, field, 0), true
	case *ast.MappingNode:
		return r.mappingEntries(m.Values, field, 0), true
	}
	line, col := pos(n)
	r.ps.add(line, col, field, "want a mapping of keys to values, found %s", describe(n))
	return nil, false
}

func (r *reader) mappingEntries(values []*ast.MappingValueNode, field string, depth int) []entry {
	var merged, own []entry
	seen := map[string]ast.Node{}
	for _, mv := range values {
		if mv.Key.IsMergeKey() {
			merged = append(merged, r.merge(mv.Value, field, depth)...)
			continue
		}
		key, _ := r.scalar(mv.Key, field)
		// The parser allows duplicate keys so that one does not hide the
		// file's other problems; each is reported here, and only the
		// first is read.
		if first, dup := seen[key]; dup {
			line, col := pos(mv.Key)
			fl, fc := pos(first)
			r.ps.add(line, col, strings.TrimPrefix(field+"."+key, "."), "mapping key %q already defined at [%d:%d]", key, fl, fc)
			continue
		}
		seen[key] = mv.Key
		own = append(own, entry{key: key, keyAt: mv.Key, value: mv.Value})
	}
	return append(merged, own...)
}

// merge expands the value of a `<<` key: one alias or a list of them.
func (r *reader) merge(v ast.Node, field string, depth int) []entry {
	if depth > 8 {
		return nil
	}
	v = r.resolve(v, field)
	switch m := v.(type) {
	case nil:
		return nil // resolve said why
	case *ast.MappingNode:
		return r.mappingEntries(m.Values, field, depth+1)
	case *ast.MappingValueNode:
		return r.mappingEntries([]*ast.MappingValueNode{m}, field, depth+1)
	case *ast.SequenceNode:
		var es []entry
		for _, item := range m.Values {
			es = append(es, r.merge(item, field, depth+1)...)
		}
		return es
	}
	line, col := pos(v)
	r.ps.add(line, col, field, "<< wants a mapping or a list of mappings, found %s", describe(v))
	return nil
}

// sequence lists the items of a list; null counts as an empty list.
func (r *reader) sequence(n ast.Node, field string) ([]ast.Node, bool) {
	n = r.resolve(n, field)
	switch s := n.(type) {
	case *ast.NullNode:
		return nil, true
	case *ast.SequenceNode:
		return s.Values, true
	case nil:
		return nil, false
	}
	line, col := pos(n)
	r.ps.add(line, col, field, "want a list, found %s", describe(n))
	return nil, false
}

// scalar is the text of a scalar as written: numbers and booleans keep
// their spelling, so `- 99` in args is the argument "99".
func (r *reader) scalar(n ast.Node, field string) (string, bool) {
	n = r.resolve(n, field)
	switch s := n.(type) {
	case *ast.StringNode:
		return s.Value, true
	case *ast.LiteralNode:
		return s.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return s.GetToken().Value, true
	case nil:
		return "", false
	}
	line, col := pos(n)
	r.ps.add(line, col, field, "want a single value, found %s", describe(n))
	return "", false
}

func describe(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return "the value " + n.GetToken().Value
}
