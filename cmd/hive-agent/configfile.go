package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// configFlag is the agent's --config: a YAML file whose keys are the
// agent's long flag names. It is read by a kong resolver, so the file
// fills only flags that neither the command line nor their environment
// variable set. kong's own ConfigFlag hands its loader a reader without
// the file's name and takes values over environment variables, and kong's
// YAML resolver has no licence; this one is built on goccy/go-yaml, which
// the catalog already uses, for the line of every problem.
type configFlag struct {
	Config configFile `name:"config" env:"HIVE_CONFIG" type:"path" help:"YAML file of settings whose keys are the long flag names (hive-id: h1); flags and environment variables win over it."`
}

// configFile is the path given to --config.
type configFile string

// BeforeResolve reads the file and registers its values, for the agent
// only (a client command that inherits HIVE_CONFIG ignores it). The value
// comes from the parse (kong sets the field itself only later), or from
// HIVE_CONFIG.
func (configFile) BeforeResolve(ctx *kong.Context, trace *kong.Path) error {
	path, _ := ctx.FlagValue(trace.Flag).(configFile)
	if path == "" {
		return nil
	}
	run := ctx.Selected()
	if run == nil || run.Name != "run" {
		return nil
	}
	values, err := loadConfigFile(string(path), run)
	if err != nil {
		return err
	}
	ctx.AddResolver(values)
	return nil
}

// configValues is a loaded file: flag name to value (string or bool).
type configValues map[string]any

// Validate is part of kong.Resolver; every key was checked when loaded.
func (v configValues) Validate(*kong.Application) error { return nil }

// Resolve gives the file's value of a flag whose environment variable is
// not set (kong asks only for flags not on the command line).
func (v configValues) Resolve(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	for _, env := range flag.Envs {
		if _, ok := os.LookupEnv(env); ok {
			return nil, nil
		}
	}
	return v[flag.Name], nil
}

// loadConfigFile reads path against the flags of the run command and
// reports every problem at once, each as file:line: key: what.
func loadConfigFile(path string, run *kong.Node) (configValues, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config (HIVE_CONFIG): %w", err)
	}
	flags := map[string]*kong.Flag{}
	var names []string
	for _, f := range run.Flags {
		if f.Name != "config" && f.Name != "help" && !f.Hidden {
			flags[f.Name] = f
			names = append(names, f.Name)
		}
	}
	var errs []error
	problem := func(line int, key, format string, args ...any) {
		at := path
		if line > 0 {
			at = fmt.Sprintf("%s:%d", path, line)
		}
		if key != "" {
			at += ": " + key
		}
		errs = append(errs, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, args...)))
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		var yerr yaml.Error
		if errors.As(err, &yerr) && yerr.GetToken() != nil {
			problem(yerr.GetToken().Position.Line, "", "not YAML: %s", yerr.GetMessage())
		} else {
			problem(0, "", "not YAML: %v", err)
		}
		return nil, configErr(errs)
	}
	values := configValues{}
	for i, doc := range f.Docs {
		if doc.Body == nil {
			continue
		}
		m, ok := doc.Body.(*ast.MappingNode)
		if !ok || i > 0 {
			problem(line(doc.Body), "", "want one mapping of flag names to values (hive-id: h1)")
			continue
		}
		for _, kv := range m.Values {
			key := kv.Key.String()
			flag, known := flags[key]
			if !known {
				problem(line(kv.Key), key, "unknown key; %s", suggest(key, names))
				continue
			}
			v, err := configValue(flag, kv.Value)
			if err != nil {
				problem(line(kv.Value), key, "%v", err)
				continue
			}
			values[key] = v
		}
	}
	return values, configErr(errs)
}

func configErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return errors.New("configuration file:\n  " + strings.Join(lines, "\n  "))
}

// configValue converts a YAML value to what flag takes: true or false for
// a switch, a scalar (as text) for the others, one of the choices for an
// enum; worker-dir also takes a list of directories.
func configValue(flag *kong.Flag, n ast.Node) (any, error) {
	if flag.IsBool() {
		b, ok := n.(*ast.BoolNode)
		if !ok {
			return nil, fmt.Errorf("want true or false, got %s", describe(n))
		}
		return b.Value, nil
	}
	var s string
	switch n := n.(type) {
	case *ast.StringNode:
		s = n.Value
	case *ast.IntegerNode, *ast.FloatNode:
		s = n.GetToken().Value
	case *ast.SequenceNode:
		if flag.Name != "worker-dir" {
			return nil, fmt.Errorf("want a single value, got a list")
		}
		var dirs []string
		for _, e := range n.Values {
			d, ok := e.(*ast.StringNode)
			if !ok {
				return nil, fmt.Errorf("want a list of directories, got %s in it", describe(e))
			}
			dirs = append(dirs, d.Value)
		}
		s = strings.Join(dirs, string(os.PathListSeparator))
	default:
		return nil, fmt.Errorf("want a text value, got %s", describe(n))
	}
	if flag.Enum != "" && !slices.Contains(strings.Split(flag.Enum, ","), s) {
		return nil, fmt.Errorf("%q: want one of %s", s, strings.ReplaceAll(flag.Enum, ",", ", "))
	}
	return s, nil
}

// describe names a YAML value's kind for a message.
func describe(n ast.Node) string {
	switch n.Type() {
	case ast.MappingType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	case ast.NullType:
		return "nothing"
	case ast.BoolType:
		return "true/false"
	}
	return fmt.Sprintf("%q", n.String())
}

func line(n ast.Node) int {
	if t := n.GetToken(); t != nil {
		return t.Position.Line
	}
	return 0
}

// suggest names the closest flag when one is close, else says what keys are.
func suggest(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(key, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return "keys are the agent's long flag names (hive-agent --help)"
	}
	return fmt.Sprintf("did you mean %q?", best)
}
