// Package retry holds what every retry loop of pgfleet shares: how long to
// wait between attempts (Backoff), whether a network error is worth another
// attempt (TransientNetwork), and a sleep that ends with its context. The
// loops themselves stay with their callers, since each reads its own answers
// (a Postgres error code, an HTTP status, a Retry-After header).
package retry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// Sleep waits d or until ctx is done, and then returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Jitter is how a Backoff randomises each wait d.
type Jitter int

const (
	// HalfJitter draws from [d/2, d]: randomised, but never much shorter
	// than planned, for a server that needs time (a compute waking up).
	HalfJitter Jitter = iota
	// FullJitter draws from (0, d]: it spreads the retries of many
	// goroutines that failed together, instead of sending them back in a
	// wave that trips a shared rate limit again.
	FullJitter
	// NoJitter waits exactly d: for a single caller whose waits must be
	// predictable (one writer at a time, asserted with a fake clock).
	NoJitter
)

// Backoff is an exponential backoff: the wait before retry n (1-based) is
// Base·2^(n−1), capped at Max, then jittered.
type Backoff struct {
	Base   time.Duration // the first wait; doubled for each retry after it
	Max    time.Duration // no wait is longer; 0 means no cap
	Jitter Jitter
}

// Delay is the wait before retry number n (1-based; n < 1 counts as 1).
func (b Backoff) Delay(n int) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	d := b.Base
	for i := 1; i < n; i++ {
		if b.Max > 0 && d >= b.Max {
			break
		}
		if d > math.MaxInt64/2 { // doubling again would overflow
			break
		}
		d *= 2
	}
	if b.Max > 0 && d > b.Max {
		d = b.Max
	}
	switch b.Jitter {
	case FullJitter:
		return rand.N(d) + 1
	case NoJitter:
		return d
	default:
		return d/2 + rand.N(d/2+1)
	}
}

// Wait sleeps Delay(n), or until ctx is done, and then returns ctx's error.
func (b Backoff) Wait(ctx context.Context, n int) error {
	return Sleep(ctx, b.Delay(n))
}

// TransientNetwork reports whether err is network trouble that another
// attempt may get past: refused, reset, cut short or timed out (a compute
// waking up, a proxy restarting). It is false for what a retry cannot fix:
// a host name that does not resolve, a certificate that is not trusted, a
// malformed address, and for a cancelled context. Protocol answers (a
// Postgres error code, an HTTP status) are the caller's to judge.
func TransientNetwork(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsNotFound // "no such host" is a typo, not an outage
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		// A per-attempt timeout; a caller whose own context ended checks
		// that first.
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	// *url.Error is itself a net.Error whose Timeout reports its cause's:
	// this catches HTTP client and header timeouts, and nothing else a URL
	// error may carry (an unsupported scheme is not worth a retry).
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}
