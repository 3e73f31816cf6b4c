package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/rbee/hive-agent/subjects"
)

// MaxBodyBytes is the largest request body read. Real requests are a few
// hundred bytes; anything larger is refused before it is parsed.
const MaxBodyBytes = 64 << 10

// Envelope is the part every request shares.
type Envelope struct {
	// JobID names the job subjects (narration, result); generated when absent.
	JobID string `json:"job_id"`
	// CommandID is echoed back; generated when absent. A resent spawn with
	// the same command id is recognised as a retry.
	CommandID string `json:"command_id"`
}

// Env returns the envelope.
func (e Envelope) Env() Envelope { return e }

func (e *Envelope) fill() *Error {
	if e.JobID == "" {
		e.JobID = uuid.NewString()
	} else if err := subjects.ValidToken(e.JobID); err != nil {
		return BadRequest("job_id", "%q %v", e.JobID, err)
	}
	if e.CommandID == "" {
		e.CommandID = uuid.NewString()
	} else if err := subjects.ValidToken(e.CommandID); err != nil {
		return BadRequest("command_id", "%q %v", e.CommandID, err)
	}
	return nil
}

// validator is a command that checks its own fields after decoding.
type validator interface {
	Command
	envelope() *Envelope
	validate() *Error
}

// Kinds lists the command kinds Decode knows.
var Kinds = []string{KindSpawn, KindDelete, KindList, KindGet, KindLogs, KindRestart, KindDrain, KindResume}

func newCommand(kind string) validator {
	switch kind {
	case KindSpawn:
		return &Spawn{}
	case KindDelete:
		return &Delete{}
	case KindList:
		return &List{}
	case KindGet:
		return &Get{}
	case KindLogs:
		return &Logs{}
	case KindRestart:
		return &Restart{}
	case KindDrain:
		return &Drain{}
	case KindResume:
		return &Resume{}
	}
	return nil
}

// Decode reads body as a command of the given kind. It always returns a
// usable envelope: the request's ids where they are valid, generated ones
// otherwise, so even a body that is not JSON gets a reply and a job result.
// An empty body counts as {}. Unknown fields, wrong types, missing required
// fields and invalid values are bad_request errors naming the field.
func Decode(kind string, body []byte) (Command, Envelope, *Error) {
	env := bestEffortEnvelope(body)
	cmd := newCommand(kind)
	if cmd == nil {
		return nil, env, &Error{Code: CodeUnknownCommand,
			Message: fmt.Sprintf("unknown command %q; known: %s", kind, strings.Join(Kinds, ", "))}
	}
	if len(body) > MaxBodyBytes {
		return nil, env, BadRequest("", "body is %d bytes; the limit is %d", len(body), MaxBodyBytes)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if !utf8.Valid(body) {
		return nil, env, BadRequest("", "body is not UTF-8 text; send one JSON object")
	}
	if body[0] != '{' {
		return nil, env, BadRequest("", "body is not a JSON object; send one JSON object such as {}")
	}
	// encoding/json matches keys without regard to case and lets a repeated
	// key win silently; the protocol wants exact names, each once.
	if e := checkKeys(body, cmd); e != nil {
		return nil, env, e
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cmd); err != nil {
		return nil, env, decodeError(err, cmd)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, env, BadRequest("", "body has data after the JSON object")
	}
	if e := cmd.envelope().fill(); e != nil {
		return nil, env, e
	}
	if e := cmd.validate(); e != nil {
		return nil, cmd.Env(), e
	}
	return cmd, cmd.Env(), nil
}

// bestEffortEnvelope reads job_id and command_id from a body that may be
// invalid in other ways, keeping each only when it is a valid token.
func bestEffortEnvelope(body []byte) Envelope {
	var env Envelope
	if len(body) <= MaxBodyBytes {
		var raw struct {
			JobID     any `json:"job_id"`
			CommandID any `json:"command_id"`
		}
		// Decode, not Unmarshal: the first object's ids are kept even
		// when data follows it.
		if json.NewDecoder(bytes.NewReader(body)).Decode(&raw) == nil {
			env.JobID = validOrEmpty(raw.JobID)
			env.CommandID = validOrEmpty(raw.CommandID)
		}
	}
	env.fill()
	return env
}

func validOrEmpty(v any) string {
	if s, ok := v.(string); ok && subjects.ValidToken(s) == nil {
		return s
	}
	return ""
}

// decodeError names the field a json error is about.
func decodeError(err error, v any) *Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		// Field is a dotted path that names embedded structs too
		// ("Envelope.job_id"); the wire name is its last element.
		field := typeErr.Field[strings.LastIndexByte(typeErr.Field, '.')+1:]
		if field == "" {
			return BadRequest("", "body must be a JSON object, not %s", typeErr.Value)
		}
		return BadRequest(field, "must be %s, not %s", jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return BadRequest("", "body is not valid JSON: %v (at byte %d)", err, syntaxErr.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return unknownField(field, v)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("", "body is not valid JSON: it ends early")
	}
	return BadRequest("", "body is not valid JSON: %v", err)
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "int32":
		return "an integer"
	case "bool":
		return "true or false"
	}
	return goKind
}

// checkKeys rejects a top-level key that is not exactly one of v's JSON
// field names, or that appears twice. Syntax errors are left to the decoder.
func checkKeys(body []byte, v any) *Error {
	known := jsonFields(reflect.TypeOf(v).Elem())
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		if !known[key] {
			return unknownField(key, v)
		}
		if seen[key] {
			return BadRequest(key, "given more than once")
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil
		}
		// An id given as "" is invalid, not absent: absent ones are generated.
		if string(raw) == `""` && idFields[key] {
			return BadRequest(key, "must not be empty; leave it out to have one generated")
		}
	}
	return nil
}

// idFields are the token fields that may be left out but never given empty.
var idFields = map[string]bool{"job_id": true, "command_id": true, "worker_id": true}

// jsonFields lists the JSON names of t's exported fields, embedded structs included.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k := range jsonFields(f.Type) {
				out[k] = true
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}
