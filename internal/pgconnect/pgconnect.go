// Package pgconnect opens tenant connections the way a fleet needs them:
// patient with computes that are waking up (Neon scales idle ones to zero and
// they take from a few hundred milliseconds to a few seconds to accept
// connections), quick to give up on errors that a retry cannot fix.
package pgconnect

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"

	"github.com/pgfleet/pgfleet/internal/retry"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Options tune connecting. Zero values mean the documented defaults.
type Options struct {
	Attempts       int           // connection attempts before a tenant counts as failed; default 4
	BaseBackoff    time.Duration // first wait between attempts, doubling, jittered; default 1s
	ConnectTimeout time.Duration // per attempt; default 30s, room for a cold compute to wake
	AppName        string        // application_name; default "pgfleet"
}

// Timeout is the per-attempt connect timeout.
func (o Options) Timeout() time.Duration {
	if o.ConnectTimeout <= 0 {
		return 30 * time.Second
	}
	return o.ConnectTimeout
}

func (o Options) attempts() int {
	if o.Attempts <= 0 {
		return 4
	}
	return o.Attempts
}

// Backoff is the wait between attempts: BaseBackoff doubling, capped at 30s,
// with half jitter so that a compute that takes seconds to wake is given
// them.
func (o Options) Backoff() retry.Backoff {
	base := o.BaseBackoff
	if base <= 0 {
		base = time.Second
	}
	return retry.Backoff{Base: base, Max: 30 * time.Second, Jitter: retry.HalfJitter}
}

// Connect opens a pgx connection, retrying transient failures. Errors name
// the host and database, never the password.
func Connect(ctx context.Context, rawURL string, o Options) (*pgx.Conn, error) {
	cfg, err := Config(rawURL, o)
	if err != nil {
		return nil, err
	}
	var conn *pgx.Conn
	err = Retry(ctx, o, rawURL, func(ctx context.Context) (err error) {
		conn, err = pgx.ConnectConfig(ctx, cfg)
		return err
	})
	return conn, err
}

// Config parses a connection string (ParseURL) and applies the options.
// Statements run without server-side prepared statements (one round trip
// each): a fleet connection runs each statement once, so preparing only
// costs time.
func Config(rawURL string, o Options) (*pgx.ConnConfig, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = o.Timeout()
	if o.AppName == "" {
		o.AppName = "pgfleet"
	}
	cfg.RuntimeParams["application_name"] = o.AppName
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	return cfg, nil
}

// ParseURL is the one parser of connection strings: validation uses it and
// so does every connection, so the two cannot disagree. Go's URL parser
// splits userinfo at the last '@' and pgx at the first, so a password with a
// raw '@' (or '/', '?', '#', a space, a bad '%') would mean one thing to a
// check and another to the connection: such a password is refused, naming
// the characters to percent-encode. Errors never quote the string.
func ParseURL(rawURL string) (*pgx.ConnConfig, error) {
	if bad := ambiguousPassword(rawURL); bad != "" {
		return nil, fmt.Errorf("the password holds %s, which a connection URL cannot carry unencoded: percent-encode it (@ %%40, / %%2F, ? %%3F, # %%23, %% %%25, space %%20, [ %%5B, ] %%5D)", bad)
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx's parse errors can quote the string they failed on.
		return nil, errors.New("not a connection URL pgfleet can read: want postgres://<user>:<password>@<host>/<database>")
	}
	return cfg, nil
}

// ambiguousPassword names the raw characters in a URL's userinfo that
// parsers split on differently, "" when there are none.
func ambiguousPassword(rawURL string) string {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return ""
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	userinfo := rest[:at]
	var found []string
	seen := map[string]bool{}
	note := func(what string) {
		if !seen[what] {
			seen[what] = true
			found = append(found, what)
		}
	}
	for i := 0; i < len(userinfo); i++ {
		switch c := userinfo[i]; {
		case c == '@' || c == '/' || c == '?' || c == '#' || c == '[' || c == ']':
			note(fmt.Sprintf("'%c'", c))
		case c == ' ' || c == '\t':
			note("a space")
		case c < 0x20 || c == 0x7f:
			note("a control character")
		case c == '%' && (i+2 >= len(userinfo) || !isHex(userinfo[i+1]) || !isHex(userinfo[i+2])):
			note("a '%' that starts no %XX escape")
		}
	}
	return strings.Join(found, ", ")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// ConnectError is a tenant that could not be connected to. pgx lists every
// address and TLS fallback it tried, often the same failure twice (TLS,
// then plain): each distinct line is shown once.
type ConnectError struct {
	Target string // host/db
	Err    error
}

func (e *ConnectError) Error() string {
	var lines []string
	for _, l := range strings.Split(e.Err.Error(), "\n") {
		if !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return fmt.Sprintf("connect to %s: %s", e.Target, strings.Join(lines, "\n"))
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Retry calls connect until it succeeds, fails for good, or attempts run
// out, waiting a jittered, doubling backoff between attempts.
func Retry(ctx context.Context, o Options, rawURL string, connect func(context.Context) error) error {
	var lastErr error
	for attempt := 1; attempt <= o.attempts(); attempt++ {
		lastErr = connect(ctx)
		if lastErr == nil {
			return nil
		}
		if !Transient(lastErr) || ctx.Err() != nil || attempt == o.attempts() {
			break
		}
		if o.Backoff().Wait(ctx, attempt) != nil {
			break
		}
	}
	return &ConnectError{Target: tenant.HostDB(rawURL), Err: lastErr}
}

// Transient reports whether err is worth another attempt: the network, a
// server that is starting or out of connection slots, a dropped connection.
// Authentication failures, missing databases and SQL errors are not.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientCode(pgErr.Code)
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return transientCode(string(pqErr.Code))
	}
	if errors.Is(err, driver.ErrBadConn) || retry.TransientNetwork(err) {
		return true
	}
	// lib/pq reports some dial failures as plain strings.
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "the database system is starting up")
}

func transientCode(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"): // connection exceptions
		return true
	case code == "57P03", // cannot_connect_now: the compute is starting
		code == "53300", // too_many_connections
		code == "57P01", // admin_shutdown: the compute restarted under us
		code == "57P02": // crash_shutdown
		return true
	}
	return false
}

// Passwords are the password of a connection string as Go's URL parser
// (tenant.Password) and as pgx read it, for the log's redactor: a string
// not yet validated may mean one password to one and another to the other,
// and whichever a connection would use must never be printed.
func Passwords(rawURL string) []string {
	ps := []string{tenant.Password(rawURL)}
	if cfg, err := ParseURL(rawURL); err == nil && cfg.Password != ps[0] {
		ps = append(ps, cfg.Password)
	}
	return ps
}
