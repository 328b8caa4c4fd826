package retry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		b      Backoff
		n      int
		lo, hi time.Duration
	}{
		{"half, first", Backoff{Base: 100 * ms}, 1, 50 * ms, 100 * ms},
		{"half, doubled", Backoff{Base: 100 * ms}, 2, 100 * ms, 200 * ms},
		{"half, fourth", Backoff{Base: 100 * ms}, 4, 400 * ms, 800 * ms},
		{"half, capped", Backoff{Base: 100 * ms, Max: 300 * ms}, 4, 150 * ms, 300 * ms},
		{"full, first", Backoff{Base: 100 * ms, Jitter: FullJitter}, 1, 1, 100 * ms},
		{"full, capped", Backoff{Base: 100 * ms, Max: time.Second, Jitter: FullJitter}, 40, 1, time.Second},
		{"none", Backoff{Base: time.Second, Jitter: NoJitter}, 3, 4 * time.Second, 4 * time.Second},
		{"none, capped", Backoff{Base: time.Second, Max: 3 * time.Second, Jitter: NoJitter}, 3, 3 * time.Second, 3 * time.Second},
		{"n below 1 is the first", Backoff{Base: time.Second, Jitter: NoJitter}, 0, time.Second, time.Second},
		{"no cap, no overflow", Backoff{Base: time.Second, Jitter: NoJitter}, 200, time.Duration(1 << 62), time.Duration(1<<63 - 1)},
		{"no cap, no overflow from a power of two", Backoff{Base: 1 << 10, Jitter: NoJitter}, 200, time.Duration(1 << 62), time.Duration(1 << 62)},
		{"zero base", Backoff{}, 3, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				if d := tt.b.Delay(tt.n); d < tt.lo || d > tt.hi {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.n, d, tt.lo, tt.hi)
				}
			}
		})
	}
}

func TestBackoffWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Backoff{Base: time.Hour}).Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
	if err := (Backoff{Base: time.Nanosecond}).Wait(context.Background(), 1); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}

func TestTransientNetwork(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"io.EOF", io.EOF, true},
		{"wrapped io.ErrUnexpectedEOF", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{"wrapped ECONNREFUSED", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"ECONNRESET", syscall.ECONNRESET, true},
		{"EHOSTUNREACH", syscall.EHOSTUNREACH, true},
		{"net.OpError", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}, true},
		{"per-attempt timeout", fmt.Errorf("connect: %w", context.DeadlineExceeded), true},
		{"url.Error EOF", &url.Error{Op: "Get", URL: "x", Err: io.EOF}, true},
		{"url.Error refused", &url.Error{Op: "Get", URL: "x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true},
		{"url.Error timeout", &url.Error{Op: "Get", URL: "x", Err: os.ErrDeadlineExceeded}, true},
		{"DNS temporary failure", &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, true},
		{"url.Error bad scheme", &url.Error{Op: "Get", URL: "x", Err: errors.New("unsupported protocol scheme")}, false},
		{"no such host", &url.Error{Op: "Get", URL: "x", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}, false},
		{"no such host in an OpError", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", IsNotFound: true}}, false},
		{"untrusted certificate", &url.Error{Op: "Get", URL: "x", Err: x509.UnknownAuthorityError{}}, false},
		{"context.Canceled", context.Canceled, false},
		{"net.OpError wrapping context.Canceled", &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}, false},
		{"plain error", errors.New("syntax error"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TransientNetwork(tt.err); got != tt.want {
				t.Errorf("TransientNetwork(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
