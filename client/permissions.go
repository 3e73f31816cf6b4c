package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// PermissionError means the NATS server refused this connection's
// credentials an operation on Subject: a publish of the command (Op
// "publish"), or the subscription the answer would come back on (Op
// "subscribe"). The server reports it at once; the command never reached
// an agent. It unwraps to nats.ErrPermissionViolation.
type PermissionError struct {
	Op      string // "publish" or "subscribe"
	Subject string
	// Err is the server's error as nats.go delivered it.
	Err error
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("permission denied: %s to %q: the NATS server refused it for these credentials", e.Op, e.Subject)
}

// Unwrap makes errors.Is(err, nats.ErrPermissionViolation) true.
func (e *PermissionError) Unwrap() error { return nats.ErrPermissionViolation }

var (
	pubViolation = regexp.MustCompile(`(?i)permissions violation for publish to "([^"]+)"`)
	subViolation = regexp.MustCompile(`(?i)permissions violation for subscription to "([^"]+)"`)
)

// permWatch hands the server's permission violations to the requests
// waiting on the subjects they name. nats.go reports a violation only to
// the connection's error handler, so without this a refused request
// would wait for its whole timeout.
type permWatch struct {
	inbox   string // the connection's inbox prefix, with its dot
	mu      sync.Mutex
	next    uint64
	waiters map[uint64]permWaiter
}

type permWaiter struct {
	subject string
	fail    context.CancelCauseFunc
}

// watchPermissions chains a handler for permission violations onto nc's
// error handler: the handler set before gets every error no request
// took (a violation a request returns is not reported twice).
func (c *Client) watchPermissions() {
	c.perms = &permWatch{inbox: inboxPrefix(c.nc), waiters: map[uint64]permWaiter{}}
	prev := c.nc.ErrorHandler()
	c.nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if !c.perms.notify(err) && prev != nil {
			prev(nc, sub, err)
		}
	})
}

func inboxPrefix(nc *nats.Conn) string {
	p := nc.Opts.InboxPrefix
	if p == "" {
		p = nats.InboxPrefix
	}
	return strings.TrimSuffix(p, ".") + "."
}

// notify fails the requests the violation is about: those publishing (or
// subscribing) to its subject, or every one when the refused subscription
// is the inbox their answers come back on. It reports whether any request took it.
func (w *permWatch) notify(err error) bool {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return false
	}
	op, subj := "publish", ""
	if m := pubViolation.FindStringSubmatch(err.Error()); m != nil {
		subj = m[1]
	} else if m := subViolation.FindStringSubmatch(err.Error()); m != nil {
		op, subj = "subscribe", m[1]
	} else {
		return false
	}
	inboxRefused := op == "subscribe" && strings.HasPrefix(subj, w.inbox)
	w.mu.Lock()
	defer w.mu.Unlock()
	took := false
	for id, wt := range w.waiters {
		if inboxRefused || wt.subject == subj {
			wt.fail(&PermissionError{Op: op, Subject: subj, Err: err})
			delete(w.waiters, id)
			took = true
		}
	}
	return took
}

// guard returns ctx cancelled with a *PermissionError as its cause when
// the server refuses a publish to subj (or the inbox subscription); call
// the func returned when the request is over.
func (c *Client) guard(ctx context.Context, subj string) (context.Context, func()) {
	ctx, fail := context.WithCancelCause(ctx)
	w := c.perms
	w.mu.Lock()
	w.next++
	id := w.next
	w.waiters[id] = permWaiter{subject: subj, fail: fail}
	w.mu.Unlock()
	return ctx, func() {
		w.mu.Lock()
		delete(w.waiters, id)
		w.mu.Unlock()
		fail(nil)
	}
}

// refused is the *PermissionError that ended ctx, or nil.
func refused(ctx context.Context) error {
	var pe *PermissionError
	if errors.As(context.Cause(ctx), &pe) {
		return pe
	}
	return nil
}
