package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// natsFlags are the agent's NATS connection settings. Secrets can come
// from files, so they stay out of `ps` and of URLs.
type natsFlags struct {
	URL          string `name:"nats-url" env:"NATS_URL" help:"NATS server URL(s), comma-separated; empty starts an embedded server."`
	natsAuth     `embed:""`
	PingInterval string `name:"nats-ping-interval" env:"HIVE_NATS_PING_INTERVAL" default:"4s" help:"How often the connection is checked; a server that misses --nats-max-pings-out pings in a row is dropped for the next one."`
	MaxPingsOut  string `name:"nats-max-pings-out" env:"HIVE_NATS_MAX_PINGS_OUT" default:"2" help:"Unanswered pings after which the server counts as dead."`
}

// natsAuth are the credential and TLS settings, the same for the agent and
// for the client subcommands.
type natsAuth struct {
	Creds        string `name:"nats-creds" env:"NATS_CREDS" help:"NATS credentials file (JWT + nkey seed)." type:"path"`
	NkeyFile     string `name:"nats-nkey-file" env:"NATS_NKEY_FILE" help:"File holding an nkey seed (SU...) to authenticate with." type:"path"`
	User         string `name:"nats-user" env:"NATS_USER" help:"NATS user name; the password comes from --nats-password-file."`
	PasswordFile string `name:"nats-password-file" env:"NATS_PASSWORD_FILE" help:"File holding the password of --nats-user." type:"path"`
	TokenFile    string `name:"nats-token-file" env:"NATS_TOKEN_FILE" help:"File holding a NATS authentication token." type:"path"`
	CA           string `name:"nats-ca" env:"NATS_CA" help:"CA certificate (PEM) to verify the NATS server." type:"path"`
	Cert         string `name:"nats-cert" env:"NATS_CERT" help:"Client certificate (PEM) for NATS TLS; goes with --nats-key." type:"path"`
	Key          string `name:"nats-key" env:"NATS_KEY" help:"Client key (PEM) for NATS TLS; goes with --nats-cert." type:"path"`
}

// NATSConfig is the checked connection configuration. Secrets were read
// from their files; options() turns it into nats.go options.
type NATSConfig struct {
	URL          string
	PingInterval time.Duration
	MaxPingsOut  int
	opts         []nats.Option
}

// config checks every setting: URLs parse, and every file exists and holds
// what it should. A file that is there but unusable would otherwise make the
// agent retry its connection forever.
func (f *natsFlags) config() (NATSConfig, error) {
	c := NATSConfig{URL: strings.TrimSpace(f.URL)}
	var errs []error
	if c.URL != "" {
		if err := checkURLs(c.URL); err != nil {
			errs = append(errs, fmt.Errorf("--nats-url (NATS_URL): %w", err))
		}
	}
	var err error
	if c.PingInterval, err = positiveDuration(f.PingInterval); err != nil {
		errs = append(errs, fmt.Errorf("--nats-ping-interval (HIVE_NATS_PING_INTERVAL) %q: %w", f.PingInterval, err))
	}
	if c.MaxPingsOut, err = strconv.Atoi(f.MaxPingsOut); err != nil || c.MaxPingsOut < 1 {
		errs = append(errs, fmt.Errorf("--nats-max-pings-out (HIVE_NATS_MAX_PINGS_OUT) %q: want a whole number of at least 1", f.MaxPingsOut))
	}
	opts, err := f.natsAuth.options()
	if err != nil {
		errs = append(errs, err)
	}
	c.opts = opts
	return c, errors.Join(errs...)
}

// options checks the credential and TLS files and turns them into nats.go
// options; it reports every problem at once.
func (f *natsAuth) options() ([]nats.Option, error) {
	var opts []nats.Option
	var errs []error
	add := func(flag, env string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s (%s): %w", flag, env, err))
		}
	}
	if f.Creds != "" {
		add("nats-creds", "NATS_CREDS", checkCreds(f.Creds))
		opts = append(opts, nats.UserCredentials(f.Creds))
	}
	if f.NkeyFile != "" {
		// nats.go reads the file itself: look at it first.
		_, err := readSecretFile(f.NkeyFile)
		var opt nats.Option
		if err == nil {
			opt, err = nats.NkeyOptionFromSeed(f.NkeyFile)
			err = fileErr(f.NkeyFile, err)
		}
		add("nats-nkey-file", "NATS_NKEY_FILE", err)
		if err == nil {
			opts = append(opts, opt)
		}
	}
	switch {
	case f.User != "" && f.PasswordFile == "":
		add("nats-password-file", "NATS_PASSWORD_FILE", errors.New("must be set with --nats-user"))
	case f.User == "" && f.PasswordFile != "":
		add("nats-user", "NATS_USER", errors.New("must be set with --nats-password-file"))
	case f.User != "":
		pw, err := readSecret(f.PasswordFile)
		add("nats-password-file", "NATS_PASSWORD_FILE", err)
		opts = append(opts, nats.UserInfo(f.User, pw))
	}
	if f.TokenFile != "" {
		tok, err := readSecret(f.TokenFile)
		add("nats-token-file", "NATS_TOKEN_FILE", err)
		opts = append(opts, nats.Token(tok))
	}
	if f.CA != "" {
		add("nats-ca", "NATS_CA", checkCA(f.CA))
		opts = append(opts, nats.RootCAs(f.CA))
	}
	switch {
	case (f.Cert == "") != (f.Key == ""):
		errs = append(errs, errors.New("--nats-cert and --nats-key go together"))
	case f.Cert != "":
		cert, cerr := readSecretFile(f.Cert)
		add("nats-cert", "NATS_CERT", cerr)
		key, kerr := readSecretFile(f.Key)
		add("nats-key", "NATS_KEY", kerr)
		if cerr == nil && kerr == nil {
			if _, err := tls.X509KeyPair(cert, key); err != nil {
				errs = append(errs, fmt.Errorf("--nats-cert/--nats-key (NATS_CERT/NATS_KEY) %s, %s: %w", f.Cert, f.Key, err))
			}
		}
		opts = append(opts, nats.ClientCert(f.Cert, f.Key))
	}
	return opts, errors.Join(errs...)
}

// checkURLs checks every URL of a comma-separated list the way an operator
// means them: a scheme NATS speaks and a host.
func checkURLs(list string) error {
	var errs []error
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		u, err := neturl.Parse(raw)
		if err != nil {
			// url.Error repeats the URL, secrets included: keep only the reason.
			var ue *neturl.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			errs = append(errs, fmt.Errorf("%s: %w", redactURL(raw), err))
			continue
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			errs = append(errs, fmt.Errorf("%s: scheme %q: want nats://, tls://, ws:// or wss://", redactURL(raw), u.Scheme))
			continue
		}
		if u.Hostname() == "" {
			errs = append(errs, fmt.Errorf("%s: no host; want e.g. nats://127.0.0.1:4222", redactURL(raw)))
		}
	}
	return errors.Join(errs...)
}

func checkCreds(path string) error {
	data, err := readSecretFile(path)
	if err != nil {
		return err
	}
	if _, err := nkeys.ParseDecoratedJWT(data); err != nil {
		return fmt.Errorf("%s: no user JWT in it: %w", path, err)
	}
	if _, err := nkeys.ParseDecoratedUserNKey(data); err != nil {
		return fmt.Errorf("%s: no user nkey seed in it: %w", path, err)
	}
	return nil
}

func checkCA(path string) error {
	data, err := readSecretFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return nil
}

// fileErr names the file in err, unless err already says it is missing.
func fileErr(path string, err error) error {
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// readSecret reads a password or token file: its first line, trimmed.
func readSecret(path string) (string, error) {
	data, err := readSecretFile(path)
	if err != nil {
		return "", err
	}
	s, _, _ := strings.Cut(string(data), "\n")
	if s = strings.TrimSpace(s); s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// redact hides the secrets of a comma-separated list of URLs, for logs and
// error messages: a password, and a user part with no password, which NATS
// reads as a token (nats://TOKEN@host).
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactURL(raw string) string {
	u, err := neturl.Parse(raw)
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
	u.User = neturl.User("xxxxx")
	return u.String()
}
