// Package client is a typed Go client of hive-agent's wire protocol: it
// sends worker commands to a hive over NATS, streams a command's narration
// while it runs, lists workers across every hive it discovers, and reads
// worker logs by byte offset. The hive-agent CLI is a thin layer on it; a
// queen written in Go can import it too.
//
// Every call is bounded by its context. A context without a deadline gets
// the client's default timeout (see WithTimeout). Calls return *AgentError
// when an agent answered with an error, and an error wrapping ErrNoAgent
// when no agent answered at all, or *PermissionError at once when the NATS
// server refused the connection's credentials the command's subject.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive-agent/subjects"
	"github.com/rbee/hive-agent/wire"
)

// Defaults of a Client's options.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultDiscoveryQuiet = 300 * time.Millisecond
	DefaultPollInterval   = 300 * time.Millisecond
	// DefaultReadyTimeout bounds a spawn with wait "ready" whose context has
	// no deadline and whose request names no wait timeout: model loads are slow.
	DefaultReadyTimeout = 10 * time.Minute
)

var (
	// ErrNoAgent means no agent answered: nobody serves the subject (it wraps
	// nats.ErrNoResponders then) or nothing came back before the deadline.
	ErrNoAgent = errors.New("no agent answered")
	// ErrInvalid means the call was refused before anything was sent: an id
	// that is not a valid subject token, a negative duration.
	ErrInvalid = errors.New("invalid argument")
)

// AgentError is the error object of an ok:false reply: the agent answered
// and refused or failed the command. Code is one of the stable wire codes
// (wire.CodeBadRequest, ...).
type AgentError = wire.Error

// IsCode reports whether err is an *AgentError with the given code.
func IsCode(err error, code string) bool {
	var ae *AgentError
	return errors.As(err, &ae) && ae.Code == code
}

// Client talks to hive-agents over one NATS connection. It is safe for
// concurrent use; it never closes the connection.
type Client struct {
	nc           *nats.Conn
	timeout      time.Duration
	quiet        time.Duration
	pollInterval time.Duration
	perms        *permWatch
	domain       string
}

// Conn is the connection the client talks over.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Option configures a Client.
type Option func(*Client)

// WithTimeout sets how long a call whose context has no deadline waits for
// its answer (DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithDiscoveryQuiet sets how long discovery keeps listening after the last
// agent answered before it takes the set of agents as complete
// (DefaultDiscoveryQuiet).
func WithDiscoveryQuiet(d time.Duration) Option { return func(c *Client) { c.quiet = d } }

// WithJetStreamDomain makes the calls that read streams (StoredJob, Events,
// WatchJob, the stale hives of Fleet) use JetStream domain d, e.g. a leaf
// node's, instead of the server's own (docs/topology.md).
func WithJetStreamDomain(d string) Option { return func(c *Client) { c.domain = d } }

// WithPollInterval sets how often Follow asks for new log bytes
// (DefaultPollInterval).
func WithPollInterval(d time.Duration) Option { return func(c *Client) { c.pollInterval = d } }

// New returns a Client on nc. It chains a handler onto nc's error handler
// (set yours before New), through which a command the server's permissions
// refuse fails at once with a *PermissionError instead of timing out.
func New(nc *nats.Conn, opts ...Option) *Client {
	c := &Client{nc: nc, timeout: DefaultTimeout, quiet: DefaultDiscoveryQuiet, pollInterval: DefaultPollInterval}
	for _, o := range opts {
		o(c)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.quiet <= 0 {
		c.quiet = DefaultDiscoveryQuiet
	}
	if c.pollInterval <= 0 {
		c.pollInterval = DefaultPollInterval
	}
	c.watchPermissions()
	return c
}

// bound gives ctx the client's timeout d unless it already has a deadline.
func bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// noAgent explains a request that got no answer; a cancelled context (the
// caller gave up, e.g. Ctrl-C) is returned as such, not as ErrNoAgent.
func noAgent(ctx context.Context, what string, err error) error {
	if pe := refused(ctx); pe != nil {
		return pe
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: %s: %w", ErrNoAgent, what, nats.ErrNoResponders)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: %s: no answer in time: %w", ErrNoAgent, what, context.DeadlineExceeded)
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// commandSubject is hive.<hive>.worker.<cmd>, refusing an invalid hive id.
func commandSubject(hive, cmd string) (string, error) {
	subj, err := subjects.WorkerCommand(hive, cmd)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return subj, nil
}

// request sends one command and decodes its reply; an ok:false reply is
// returned with its *AgentError.
func request[T any](ctx context.Context, c *Client, hive, cmd string, body any) (Reply[T], error) {
	var r Reply[T]
	subj, err := commandSubject(hive, cmd)
	if err != nil {
		return r, err
	}
	data, err := json.Marshal(body)
	if err != nil {
		return r, fmt.Errorf("encode %s request: %w", cmd, err)
	}
	ctx, cancel := bound(ctx, c.timeout)
	defer cancel()
	ctx, done := c.guard(ctx, subj)
	defer done()
	msg, err := c.nc.RequestWithContext(ctx, subj, data)
	if err != nil {
		return r, noAgent(ctx, subj, err)
	}
	return decodeReply[T](subj, msg.Data)
}

// decodeReply reads a reply or job result body.
func decodeReply[T any](subj string, data []byte) (Reply[T], error) {
	var r Reply[T]
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: reply is not a hive-agent reply: %w: %.200s", subj, err, data)
	}
	if !r.OK {
		if r.Error == nil {
			r.Error = &AgentError{Code: wire.CodeInternal, Message: fmt.Sprintf("reply has ok false and no error: %.200s", data)}
		}
		return r, r.Error
	}
	return r, nil
}
