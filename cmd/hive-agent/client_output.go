package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rbee/hive-agent/client"
)

// output is where a client command writes: narration, progress and errors
// to stderr, the result to stdout, so that `hive-agent spawn ... --json | jq`
// sees only the result. Each stream is styled for what it is: colour and
// relative times on a terminal, plain text and absolute times in a pipe.
type output struct {
	stdout, stderr io.Writer
	out, err       style
	// start is when the command began; a terminal shows narration relative to it.
	start time.Time
}

func newOutput(stdout, stderr io.Writer) *output {
	return &output{stdout: stdout, stderr: stderr, out: styleFor(stdout), err: styleFor(stderr), start: time.Now()}
}

// style says how one stream is written.
type style struct {
	// tty: a person reads it; times are relative.
	tty bool
	// color: ANSI colours (a terminal, and NO_COLOR not set).
	color bool
}

// styleFor looks at w: a character device is a terminal.
func styleFor(w io.Writer) style {
	f, ok := w.(*os.File)
	if !ok {
		return style{}
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return style{}
	}
	return style{tty: true, color: os.Getenv("NO_COLOR") == ""}
}

const (
	ansiBold   = "1"
	ansiDim    = "2"
	ansiRed    = "31"
	ansiYellow = "33"
	ansiCyan   = "36"
)

func (s style) paint(code, text string) string {
	if !s.color || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// errorf writes "error: ..." to stderr.
func (o *output) errorf(format string, args ...any) {
	fmt.Fprintf(o.stderr, "%s %s\n", o.err.paint(ansiRed+";"+ansiBold, "error:"), fmt.Sprintf(format, args...))
}

// warnf writes "warning: ..." to stderr.
func (o *output) warnf(format string, args ...any) {
	fmt.Fprintf(o.stderr, "%s %s\n", o.err.paint(ansiYellow, "warning:"), fmt.Sprintf(format, args...))
}

// event writes one narration event to stderr as it comes: its time, its
// action and the agent's sentence.
func (o *output) event(e client.Event) {
	fmt.Fprintln(o.stderr, eventLine(o.err, o.start, e))
}

// eventLine is client.EventLine in a pipe; on a terminal the time is
// relative to the command's start and the action is coloured by level.
func eventLine(s style, start time.Time, e client.Event) string {
	if !s.tty {
		return client.EventLine(e)
	}
	code := ansiCyan
	switch e.Level {
	case "warn":
		code = ansiYellow
	case "error":
		code = ansiRed
	}
	rel := fmt.Sprintf("%+8.3fs", e.TS.Sub(start).Seconds())
	return fmt.Sprintf("%s  %s  %s", s.paint(ansiDim, rel), s.paint(code, fmt.Sprintf("%-22s", e.Action)), e.Human)
}

// when is a point in time for a person: "4m10s ago" on a terminal, RFC
// 3339 in a pipe (where a script may parse it).
func (s style) when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if s.tty {
		return client.HumanDuration(time.Since(t)) + " ago (" + t.Local().Format("2006-01-02 15:04:05") + ")"
	}
	return t.UTC().Format(time.RFC3339)
}

// fields writes key: value lines, aligned, to stdout.
func (o *output) fields(kv ...string) error {
	tw := tabwriter.NewWriter(o.stdout, 0, 0, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", o.out.paint(ansiBold, kv[i]+":"), kv[i+1])
	}
	return tw.Flush()
}

// table writes a table whose header is emphasised on a terminal.
func (o *output) table(write func(io.Writer) error) error {
	if !o.out.color {
		return write(o.stdout)
	}
	var b strings.Builder
	if err := write(&b); err != nil {
		return err
	}
	head, rest, _ := strings.Cut(b.String(), "\n")
	_, err := fmt.Fprintf(o.stdout, "%s\n%s", o.out.paint(ansiBold, head), rest)
	return err
}

// json writes v as JSON to stdout: one line in a pipe, as the agent sends
// it, indented on a terminal.
func (o *output) json(v any) error {
	enc := json.NewEncoder(o.stdout)
	if o.out.tty {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}
