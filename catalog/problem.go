package catalog

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong in a catalog file, with where it is: the line
// and column (1-based) and the field, e.g. worker_types.llama.args[2].
type Problem struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every problem found in one catalog file. A file is checked to the
// end, so an operator fixes all of them in one round.
type Error struct {
	File     string
	Problems []*Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so errors.As finds a *Problem.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// problems collects the problems of one file in the order of their place.
type problems struct {
	file string
	list []*Problem
}

func (ps *problems) add(line, col int, field, format string, args ...any) {
	ps.list = append(ps.list, &Problem{File: ps.file, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	sort.SliceStable(ps.list, func(i, j int) bool {
		a, b := ps.list[i], ps.list[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &Error{File: ps.file, Problems: ps.list}
}
