package pgconnect

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
)

func TestTransient(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Severity: "FATAL", Code: code, Message: "m"} }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"pgx starting up 57P03", pg("57P03"), true},
		{"pgx too many connections 53300", pg("53300"), true},
		{"pgx connection failure 08006", pg("08006"), true},
		{"pgx unable to connect 08001", pg("08001"), true},
		{"pgx admin shutdown 57P01", pg("57P01"), true},
		{"pgx wrapped 57P03", fmt.Errorf("connect: %w", pg("57P03")), true},
		{"pgx auth failed 28P01", pg("28P01"), false},
		{"pgx no database 3D000", pg("3D000"), false},
		{"pgx undefined table 42P01", pg("42P01"), false},
		{"pgx query canceled 57014", pg("57014"), false},
		{"pgx wrapped 28P01", fmt.Errorf("connect: %w", pg("28P01")), false},
		{"pq starting up 57P03", &pq.Error{Severity: "FATAL", Code: "57P03"}, true},
		{"pq too many connections 53300", &pq.Error{Code: "53300"}, true},
		{"pq wrapped 08006", fmt.Errorf("x: %w", &pq.Error{Code: "08006"}), true},
		{"pq auth failed 28P01", &pq.Error{Code: "28P01"}, false},
		{"pq no database 3D000", &pq.Error{Code: "3D000"}, false},
		{"io.EOF", io.EOF, true},
		{"wrapped io.ErrUnexpectedEOF", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{"wrapped ECONNREFUSED", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"ECONNRESET", syscall.ECONNRESET, true},
		{"net.OpError", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}, true},
		{"wrapped net.OpError", fmt.Errorf("connect: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{"driver.ErrBadConn", driver.ErrBadConn, true},
		{"per-attempt timeout", fmt.Errorf("connect: %w", context.DeadlineExceeded), true},
		{"lib/pq string dial error", errors.New("dial tcp 10.0.0.1:5432: connect: connection refused"), true},
		{"lib/pq string starting up", errors.New("pq: the database system is starting up"), true},
		{"context.Canceled", context.Canceled, false},
		{"wrapped context.Canceled", fmt.Errorf("connect: %w", context.Canceled), false},
		{"net.OpError wrapping context.Canceled", &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}, false},
		{"plain error", errors.New("syntax error at or near \"SELEC\""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Transient(tt.err); got != tt.want {
				t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		base    time.Duration
		attempt int
		lo, hi  time.Duration
	}{
		{0, 1, 500 * time.Millisecond, time.Second}, // default base 1s
		{0, 3, 2 * time.Second, 4 * time.Second},
		{0, 10, 15 * time.Second, 30 * time.Second}, // capped
		{100 * time.Millisecond, 1, 50 * time.Millisecond, 100 * time.Millisecond},
		{100 * time.Millisecond, 2, 100 * time.Millisecond, 200 * time.Millisecond},
		{100 * time.Millisecond, 4, 400 * time.Millisecond, 800 * time.Millisecond},
	}
	for _, tt := range tests {
		b := Options{BaseBackoff: tt.base}.Backoff()
		for range 200 {
			if d := b.Delay(tt.attempt); d < tt.lo || d > tt.hi {
				t.Fatalf("Backoff().Delay(%d) with base %v = %v, want within [%v, %v]", tt.attempt, tt.base, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	if got := (Options{}).Timeout(); got != 30*time.Second {
		t.Errorf("default Timeout = %v", got)
	}
	if got := (Options{ConnectTimeout: time.Second}).Timeout(); got != time.Second {
		t.Errorf("Timeout = %v", got)
	}
	if got := (Options{}).attempts(); got != 4 {
		t.Errorf("default attempts = %d", got)
	}
	cfg, err := Config("postgres://u:pw@h/db?sslmode=disable", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RuntimeParams["application_name"] != "pgfleet" || cfg.ConnectTimeout != 30*time.Second {
		t.Errorf("application_name = %q, ConnectTimeout = %v", cfg.RuntimeParams["application_name"], cfg.ConnectTimeout)
	}
}

func TestConfigErrorHidesPassword(t *testing.T) {
	const pw = "Sup3rS3cret"
	for i, raw := range []string{
		"postgres://u:" + pw + "@h:notaport/db",
		"postgres://u:" + pw + "@h/db?sslmode=bogus",
		"postgres://u:" + pw + "@h/db?connect_timeout=abc",
	} {
		_, err := Config(raw, Options{})
		if err == nil {
			t.Errorf("Config succeeded on malformed URL #%d", i)
			continue
		}
		if s := err.Error(); strings.Contains(s, pw) {
			t.Errorf("Config error %q contains the password", s)
		}
	}
}

// TestRetry drives Retry with a fake connect to count attempts.
func TestRetry(t *testing.T) {
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	auth := &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}
	tests := []struct {
		name     string
		attempts int
		errs     []error // returned by successive calls; nil = success
		wantN    int
		wantErr  error
	}{
		{"first try", 3, []error{nil}, 1, nil},
		{"wakes up on the third", 4, []error{refused, refused, nil}, 3, nil},
		{"gives up after attempts", 3, []error{refused, refused, refused, nil}, 3, syscall.ECONNREFUSED},
		{"default attempts", 0, []error{refused, refused, refused, refused, nil}, 4, syscall.ECONNREFUSED},
		{"not transient stops at once", 4, []error{auth, nil}, 1, auth},
		{"transient then fatal", 4, []error{refused, auth, nil}, 2, auth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := Retry(context.Background(), Options{Attempts: tt.attempts, BaseBackoff: time.Millisecond}, "postgres://u:pw@h/db",
				func(context.Context) error {
					e := tt.errs[n]
					n++
					return e
				})
			if n != tt.wantN {
				t.Errorf("connect called %d times, want %d", n, tt.wantN)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("Retry = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Retry = %v, want it to wrap %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "h/db") {
				t.Errorf("Retry error %q does not name h/db", err)
			}
		})
	}
}
