package github

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgfleet/pgfleet/internal/retry"
)

// Clock is the client's sense of time: when it is, and how to wait. Tests
// give the client a fake one so that pacing and rate-limit waits take no
// real time and can be asserted exactly.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// Sleep waits for d, or until ctx ends (then it returns ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx ends.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error { return retry.Sleep(ctx, d) }

var _ Clock = SystemClock{}

// Wait is one pause the client is about to make, told to Options.OnWait.
// The routine gap between two writes is not reported; everything longer is.
type Wait struct {
	Op       string        // e.g. `put secret ACME_DATABASE_URL in repository o/r`
	Reason   string        // "secondary rate limit", "rate limit", "hourly write budget", "server error"
	Status   int           // GitHub's status (403, 429, 5xx) when GitHub asked for it; 0 for the client's own budget
	Duration time.Duration // how long the client will wait
	Attempt  int           // the attempt that was refused (1 for the first); 0 for the client's own budget
}

// Stats counts what a Client has done so far.
type Stats struct {
	Requests      int           // HTTP requests sent, retries included
	Writes        int           // of which PUT, POST, PATCH or DELETE
	RateLimited   int           // answers that were rate limits and were waited out (or given up on)
	WritesRefused int           // of which answers to writes: GitHub refused the write as too fast
	RefusalWait   time.Duration // the longest GitHub asked to wait after refusing a write
	Waited        time.Duration // time spent waiting, the routine gaps between writes included
	WriteGap      time.Duration // the gap between writes now (it grows after a refused write)
	MaxWriteGap   time.Duration // the widest the gap has been
}

// pacer is the client's transport. It keeps the client within GitHub's
// secondary rate limits, below go-github so that go-github never sees a
// rate-limit answer it would act on with its own (real-time) clock:
//
//   - writes go out one at a time, at least gap apart, and at most perHour
//     of them in any sliding hour; reads at most readsPerMinute in any
//     sliding minute;
//   - a write GitHub refuses as too fast doubles the gap (GitHub warns that
//     an integration that keeps going while limited may be banned); each
//     write accepted afterwards takes back a sixteenth of what the gap has
//     above the base gap, so the pace recovers over a few dozen writes;
//   - a 403 or 429 that is a rate limit (retry-after, x-ratelimit-reset with
//     x-ratelimit-remaining 0, or GitHub's "secondary rate limit" message)
//     blocks every request until GitHub's time, then the request is sent
//     again, up to maxRetries times;
//   - a 502, 503 or 504 to a GET or PUT (both idempotent here) is retried a
//     few times with a short backoff.
//
// A wait that would outlast the request context's deadline, or its start
// deadline (WithStartDeadline), is not started: the request fails at once
// with a *WaitError.
type pacer struct {
	next           http.RoundTripper
	attemptTimeout time.Duration // bounds each attempt, not the waits between them
	clock          Clock
	maxRetries     int
	onWait         func(Wait)

	writeTurn chan struct{} // holds one token: the right to send a write

	mu            sync.Mutex
	baseGap       time.Duration // the gap asked for (Options.WriteGap, SetWriteGap)
	gap           time.Duration // the gap now: baseGap, or wider after a refused write
	lastWrite     time.Time
	writesInHour  window
	readsInMinute window
	blockedUntil  time.Time // GitHub asked every request to wait until then
	blockReason   string
	blockStatus   int
	stats         Stats
}

// Adapting the gap: a refused write doubles it (at least to minRefusedGap,
// at most maxAdaptedGap); every accepted write takes back 1/gapRecovery of
// what it has above the base.
const (
	minRefusedGap = 100 * time.Millisecond
	maxAdaptedGap = time.Minute
	gapRecovery   = 16
)

// window counts the requests started within a sliding span, to keep them
// to limit (limit <= 0: no bound).
type window struct {
	limit  int
	span   time.Duration
	starts []time.Time // oldest first
}

// slot is when the next request fits in the window, if it is full now.
func (w *window) slot(now time.Time) (time.Time, bool) {
	if w.limit <= 0 {
		return time.Time{}, false
	}
	cutoff := now.Add(-w.span)
	i := 0
	for i < len(w.starts) && !w.starts[i].After(cutoff) {
		i++
	}
	w.starts = w.starts[i:]
	if len(w.starts) < w.limit {
		return time.Time{}, false
	}
	return w.starts[len(w.starts)-w.limit].Add(w.span), true
}

func (w *window) add(now time.Time) {
	if w.limit > 0 {
		w.starts = append(w.starts, now)
	}
}

// serverRetries bounds the retries of a 5xx answer; serverBackoff is the
// first pause, doubled each time.
const (
	serverRetries = 3
	serverBackoff = time.Second
)

// Header-less rate limits: GitHub says to wait at least a minute, then
// increasingly longer.
const (
	defaultLimitWait = time.Minute
	maxLimitWait     = 15 * time.Minute
)

// The waits are exact (no jitter): one client writes at a time, and its
// tests assert the waits.
var (
	serverBackoffs = retry.Backoff{Base: serverBackoff, Jitter: retry.NoJitter}
	limitBackoffs  = retry.Backoff{Base: defaultLimitWait, Max: maxLimitWait, Jitter: retry.NoJitter}
)

func newPacer(next http.RoundTripper, attemptTimeout time.Duration, clock Clock, gap time.Duration, writesPerHour, readsPerMinute, maxRetries int, onWait func(Wait)) *pacer {
	p := &pacer{
		next: next, attemptTimeout: attemptTimeout, clock: clock, maxRetries: maxRetries, onWait: onWait,
		writeTurn:     make(chan struct{}, 1),
		writesInHour:  window{limit: writesPerHour, span: time.Hour},
		readsInMinute: window{limit: readsPerMinute, span: time.Minute},
	}
	p.setGap(gap)
	p.writeTurn <- struct{}{}
	return p
}

// setGap makes d the base gap between writes, and the gap now.
func (p *pacer) setGap(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.baseGap, p.gap = d, d
	p.stats.WriteGap = max(d, 0)
	p.stats.MaxWriteGap = max(p.stats.MaxWriteGap, d)
}

// adaptGap widens the gap after GitHub refused a write as too fast, or
// narrows it back a little after a write it accepted.
func (p *pacer) adaptGap(refused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case refused:
		p.gap = min(max(2*p.gap, minRefusedGap), maxAdaptedGap)
	case p.gap > p.baseGap:
		p.gap -= (p.gap - max(p.baseGap, 0)) / gapRecovery
		if p.gap-p.baseGap < time.Millisecond {
			p.gap = p.baseGap
		}
	}
	p.stats.WriteGap = max(p.gap, 0)
	p.stats.MaxWriteGap = max(p.stats.MaxWriteGap, p.gap)
}

var _ http.RoundTripper = (*pacer)(nil)

type opKey struct{}

// withOp labels ctx with the operation a request belongs to, for Wait.Op.
func withOp(ctx context.Context, label string) context.Context {
	return context.WithValue(ctx, opKey{}, label)
}

type startDeadlineKey struct{}

// WithStartDeadline returns a ctx under which no request is sent, nor sent
// again after a rate limit, later than t (by the client's clock): a wait
// that would pass t fails with a *WaitError instead. Unlike a context
// deadline, t does not cut short a request already sent, whose answer
// then is not lost: a time budget stops new writes and lets the one in
// flight finish.
func WithStartDeadline(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, startDeadlineKey{}, t)
}

type refusalsKey struct{}

// CountRefusals returns a ctx under which every write GitHub refuses as too
// fast (its secondary rate limit) adds one to n: the refusals of one
// caller's writes, where Stats counts the client's.
func CountRefusals(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, refusalsKey{}, n)
}

func startDeadline(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(startDeadlineKey{}).(time.Time)
	return t, ok
}

func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

func (p *pacer) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	write := isWrite(req.Method)
	if write {
		select {
		case <-p.writeTurn:
			defer func() { p.writeTurn <- struct{}{} }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	label, _ := ctx.Value(opKey{}).(string)
	limited, failed := 0, 0 // rate-limit answers and 5xx answers so far
	for attempt := 1; ; attempt++ {
		if err := p.awaitTurn(ctx, write, label); err != nil {
			return nil, err
		}
		r, err := rewind(req, attempt)
		if err != nil {
			return nil, err
		}
		resp, err := p.send(r)
		if err != nil {
			return nil, err
		}
		now := p.clock.Now()
		if wait, reason, ok := p.rateLimit(resp, now, limited); ok {
			limited++
			p.mu.Lock()
			p.stats.RateLimited++
			if write && reason == "secondary rate limit" {
				p.stats.WritesRefused++
				p.stats.RefusalWait = max(p.stats.RefusalWait, wait)
			}
			p.mu.Unlock()
			if write && reason == "secondary rate limit" {
				p.adaptGap(true)
				if n, ok := ctx.Value(refusalsKey{}).(*atomic.Int64); ok {
					n.Add(1)
				}
			}
			if limited > p.maxRetries {
				return handOver(resp, wait), nil // go-github turns it into an error with GitHub's message
			}
			discard(resp)
			p.block(now.Add(wait), reason, resp.StatusCode)
			if err := p.fits(ctx, wait, reason, resp.StatusCode); err != nil {
				return nil, err
			}
			p.notify(Wait{Op: label, Reason: reason, Status: resp.StatusCode, Duration: wait, Attempt: attempt})
			continue
		}
		if retryable5xx(req.Method, resp.StatusCode) && failed < serverRetries {
			failed++
			wait := serverBackoffs.Delay(failed)
			if err := p.fits(ctx, wait, "server error", resp.StatusCode); err != nil {
				return resp, nil
			}
			discard(resp)
			p.notify(Wait{Op: label, Reason: "server error", Status: resp.StatusCode, Duration: wait, Attempt: attempt})
			if err := p.sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		if write && resp.StatusCode/100 == 2 {
			p.adaptGap(false)
		}
		p.notePrimaryLimit(resp, now, label)
		return resp, nil
	}
}

// send makes one attempt, bounded by the attempt timeout. The timeout ends
// when the answer's body is closed, so that go-github can still read it.
func (p *pacer) send(r *http.Request) (*http.Response, error) {
	if p.attemptTimeout <= 0 {
		return p.next.RoundTrip(r)
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.attemptTimeout)
	resp, err := p.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// awaitTurn waits until the request may be sent: after any pause GitHub
// asked for and, for a write, after the gap since the previous write and
// within the hourly budget. It then counts the request as sent.
func (p *pacer) awaitTurn(ctx context.Context, write bool, label string) error {
	for {
		p.mu.Lock()
		now := p.clock.Now()
		until, reason, status := p.blockedUntil, p.blockReason, p.blockStatus
		if write {
			if t := p.lastWrite.Add(p.gap); p.gap > 0 && t.After(until) {
				until, reason, status = t, "", 0 // the routine gap: not reported
			}
			if t, ok := p.writesInHour.slot(now); ok && t.After(until) {
				until, reason, status = t, "hourly write budget", 0
			}
		} else if t, ok := p.readsInMinute.slot(now); ok && t.After(until) {
			until, reason, status = t, "", 0 // reads are paced quietly too
		}
		if !until.After(now) {
			if by, ok := startDeadline(ctx); ok && now.After(by) {
				p.mu.Unlock()
				return &WaitError{Reason: "a request", StartDeadline: true}
			}
			p.stats.Requests++
			if write {
				p.stats.Writes++
				p.lastWrite = now
				p.writesInHour.add(now)
			} else {
				p.readsInMinute.add(now)
			}
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		d := until.Sub(now)
		if err := p.fits(ctx, d, reason, status); err != nil {
			return err
		}
		if reason == "hourly write budget" {
			p.notify(Wait{Op: label, Reason: reason, Duration: d})
		}
		if err := p.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// fits refuses a wait that would outlast ctx's deadline or start deadline.
func (p *pacer) fits(ctx context.Context, d time.Duration, reason string, status int) error {
	if reason == "" {
		reason = "the pause between requests"
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return &WaitError{Reason: reason, Status: status, Wait: d}
	}
	if by, ok := startDeadline(ctx); ok && by.Sub(p.clock.Now()) < d {
		return &WaitError{Reason: reason, Status: status, Wait: d, StartDeadline: true}
	}
	return nil
}

func (p *pacer) sleep(ctx context.Context, d time.Duration) error {
	err := p.clock.Sleep(ctx, d)
	if err == nil {
		p.mu.Lock()
		p.stats.Waited += d
		p.mu.Unlock()
	}
	return err
}

func (p *pacer) notify(w Wait) {
	if p.onWait != nil {
		p.onWait(w)
	}
}

func (p *pacer) block(until time.Time, reason string, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until.After(p.blockedUntil) {
		p.blockedUntil, p.blockReason, p.blockStatus = until, reason, status
	}
}

// rateLimit reports whether resp is a rate-limit answer, and how long to
// wait before sending again. limited is how many the request already had.
func (p *pacer) rateLimit(resp *http.Response, now time.Time, limited int) (time.Duration, string, bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, "", false
	}
	h := resp.Header
	if v := h.Get("Retry-After"); v != "" {
		if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && secs >= 0 {
			return max(time.Duration(secs)*time.Second, time.Second), "secondary rate limit", true
		}
	}
	if h.Get("X-Ratelimit-Remaining") == "0" {
		if reset, ok := resetTime(h); ok {
			// GitHub's reset is whole seconds; one more keeps clear of the edge.
			return max(reset.Sub(now)+time.Second, time.Second), "rate limit", true
		}
	}
	backoff := limitBackoffs.Delay(limited + 1)
	if resp.StatusCode == http.StatusTooManyRequests {
		return backoff, "secondary rate limit", true
	}
	// A 403 is also what a missing permission gets: only GitHub's own
	// wording makes a header-less 403 a rate limit.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err == nil && bytes.Contains(bytes.ToLower(body), []byte("secondary rate limit")) {
		return backoff, "secondary rate limit", true
	}
	return 0, "", false
}

// waitHeader carries, on a rate-limit answer the client gives up on, how
// long GitHub asked to wait (in seconds), for Error.RetryAfter.
const waitHeader = "X-Pgfleet-Retry-After"

// handOver prepares a rate-limit answer the client gives up on for
// go-github. GitHub's rate-limit headers are removed: from them go-github
// would refuse every later request by itself, on the real clock, instead of
// letting the pacer wait.
func handOver(resp *http.Response, wait time.Duration) *http.Response {
	for _, h := range []string{"Retry-After", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"} {
		resp.Header.Del(h)
	}
	resp.Header.Set(waitHeader, strconv.FormatInt(int64(wait/time.Second), 10))
	return resp
}

// notePrimaryLimit handles an answer that spent the last request of the
// primary rate limit: every request waits until its reset, on the client's
// clock. The header is then removed so that go-github does not refuse the
// next request by itself, on the real clock, with an error.
func (p *pacer) notePrimaryLimit(resp *http.Response, now time.Time, label string) {
	if resp.StatusCode/100 != 2 || resp.Header.Get("X-Ratelimit-Remaining") != "0" {
		return
	}
	if reset, ok := resetTime(resp.Header); ok && reset.After(now) {
		until := reset.Add(time.Second)
		p.block(until, "rate limit", 0)
		resp.Header.Del("X-Ratelimit-Remaining")
		p.notify(Wait{Op: label, Reason: "rate limit", Duration: until.Sub(now)})
	}
}

func resetTime(h http.Header) (time.Time, bool) {
	secs, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-Ratelimit-Reset")), 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}

func retryable5xx(method string, status int) bool {
	if method != http.MethodGet && method != http.MethodPut {
		return false
	}
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// rewind returns the request to send as attempt n: the request itself the
// first time, then a copy with a fresh body.
func rewind(req *http.Request, n int) (*http.Request, error) {
	if n == 1 || req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("cannot resend a request whose body cannot be read again")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	return r, nil
}

// discard drains and closes a response that will not be returned, so that
// its connection can be reused.
func discard(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

func (p *pacer) snapshot() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}
