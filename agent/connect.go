package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rbee/hive-agent/consumer"
)

// startEmbedded starts the embedded NATS server; with storeDir set it has
// JetStream, storing there, so durable intake works out of the box.
func startEmbedded(listen, storeDir, domain string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen %q: %w", listen, err)
	}
	var port int
	if _, err := fmt.Sscan(portStr, &port); err != nil {
		return nil, fmt.Errorf("nats listen %q: bad port", listen)
	}
	if port > 0 {
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS server cannot listen on %s (%v); is a NATS server already running? Use --nats-url nats://%s to join it, or --nats-listen for another address", listen, err, listen)
		}
		l.Close()
	}
	opts := &server.Options{Host: host, Port: port, NoLog: true, NoSigs: true, ServerName: "hive-agent-embedded"}
	if storeDir != "" {
		if err := os.MkdirAll(storeDir, 0o700); err != nil {
			return nil, fmt.Errorf("jetstream dir: %w", err)
		}
		opts.JetStream, opts.StoreDir, opts.JetStreamDomain = true, storeDir, domain
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s not ready after 10s", listen)
	}
	return s, nil
}

// subscriptionRefused matches the subject in the server's permissions
// violation for a subscription.
var subscriptionRefused = regexp.MustCompile(`Subscription to "(\S+)"`)

// connect connects to NATS, retrying with exponential backoff (and saying
// so) until the server answers or ctx ends; once connected it reconnects
// forever. A subscription the server refuses is sent to fatal.
func (a *Agent) connect(ctx context.Context, url string) (*nats.Conn, error) {
	cfg, log, fatal := a.cfg, a.cfg.Logger, a.fatal
	// The default keep-alive (2 min, 2 pings) notices a frozen server or
	// a partition only after up to 6 min; the default write deadline
	// (1 min) hides one under load.
	opts := append(consumer.KeepAlive(cfg.PingInterval, cfg.MaxPingsOut), []nats.Option{
		nats.Name("hive-agent " + cfg.HiveID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(2 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if m := subscriptionRefused.FindStringSubmatch(err.Error()); m != nil && errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case fatal <- fmt.Errorf("the NATS server refused the agent's subscription to %q (permissions); "+
					"grant this user subscribe permission on it, the agent cannot serve without it", m[1]):
				default:
				}
				return
			}
			log.Error("NATS error", "subject", subj, "err", err)
		}),
	}...)
	opts = append(opts, cfg.NATSOptions...)
	attempt := 0
	op := func() (*nats.Conn, error) {
		attempt++
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
				return nil, backoff.Permanent(err)
			}
			return nil, err
		}
		return nc, nil
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0
	nc, err := backoff.RetryNotifyWithData(op, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		log.Warn("NATS not reachable yet; retrying", "url", Redact(url), "attempt", attempt, "next_in", next.Round(time.Millisecond), "err", err)
	})
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", Redact(url), err)
	}
	log.Info("connected to NATS", "url", Redact(nc.ConnectedUrl()), "server", nc.ConnectedServerName())
	return nc, nil
}

// Redact hides the secrets of a comma-separated list of URLs, for logs and
// error messages: a password, and a user part with no password, which NATS
// reads as a token (nats://TOKEN@host).
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: hide everything before an @, which is where secrets go.
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			scheme, _, ok := strings.Cut(raw, "://")
			if ok {
				return scheme + "://xxxxx@" + raw[at+1:]
			}
			return "xxxxx@" + raw[at+1:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	if _, hasPw := u.User.Password(); hasPw {
		return u.Redacted()
	}
	u.User = url.User("xxxxx")
	return u.String()
}
