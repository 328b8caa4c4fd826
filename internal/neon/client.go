// Package neon is a small client for the Neon API v2: it lists a fleet's
// projects page by page, resolves branches and fetches connection URIs.
//
// A fleet run makes a few requests per tenant from many goroutines, so the
// client's job is mostly to be a good citizen of Neon's rate limits (700
// requests a minute per account, 40 a second per route) and to survive the
// answers Neon documents as retryable (429, 423, 503) without losing work.
package neon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/pgfleet/pgfleet/internal/redact"
	"github.com/pgfleet/pgfleet/internal/retry"
)

// Defaults for Options.
const (
	DefaultBaseURL           = "https://console.neon.tech/api/v2"
	DefaultRequestsPerMinute = 600 // Neon allows 700 a minute per account; the rest is for other tools sharing the key.
	DefaultPerRouteRPS       = 35  // Neon allows 40 a second per route.
	DefaultMaxAttempts       = 8
	DefaultBaseBackoff       = 500 * time.Millisecond
	DefaultMaxBackoff        = 20 * time.Second
	DefaultUserAgent         = "pgfleet"
)

// maxRetryAfter caps how long the client obeys a Retry-After: a longer one
// means Neon is down for longer than a fleet run should sit waiting, so the
// request fails at once and says so.
const maxRetryAfter = 5 * time.Minute

// maxBody bounds what is read from a response; a page of 400 projects is
// well under 1 MiB.
const maxBody = 32 << 20

// Options configures a Client. The zero value of every field means its
// documented default.
type Options struct {
	BaseURL string // default DefaultBaseURL
	// APIKey is sent as a Bearer token. It is a credential: the client never
	// puts it in an error, and redacts it if Neon ever echoes it back.
	APIKey string
	// Redact scrubs text that came from outside the client (Neon's error
	// messages, transport errors) before it goes into an error. Default: a
	// redactor that knows APIKey. pgfleet passes its one redactor's Scrub.
	Redact func(string) string
	// OrgID is sent as org_id on GET /projects. Personal API keys that
	// belong to organizations need it; see IsOrgIDRequired.
	OrgID string
	// HTTPClient sends the requests. Default: a client with a 60 s timeout
	// per attempt and 10 s dial and TLS, 30 s response-header timeouts, so a
	// hung connection becomes a retry instead of a stuck run.
	HTTPClient *http.Client
	// RequestsPerMinute is the account-wide budget shared by every request
	// of this Client, retries included. Default DefaultRequestsPerMinute.
	RequestsPerMinute int
	// PerRouteRPS is the budget per route (method and path template, such as
	// "GET /projects/{project_id}/connection_uri"). Default
	// DefaultPerRouteRPS.
	PerRouteRPS float64
	// MaxAttempts bounds the tries of one GET, the first included. Default
	// DefaultMaxAttempts.
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the full-jitter exponential backoff
	// between attempts: a random wait in [0, min(MaxBackoff,
	// BaseBackoff·2^retry)). Defaults DefaultBaseBackoff, DefaultMaxBackoff.
	BaseBackoff, MaxBackoff time.Duration
	// UserAgent is sent with every request. Default DefaultUserAgent.
	UserAgent string
	// OnRetry, if set, is told about every retry before the client waits, so
	// a long wait on a rate-limited account shows up in the log. err never
	// contains the API key.
	OnRetry func(route string, attempt int, wait time.Duration, err error)
}

// Client talks to the Neon API. It is safe for concurrent use; every
// goroutine shares its rate limiters, which is the point of having one.
type Client struct {
	base        string
	key         string
	scrub       func(string) string
	orgID       string
	http        *http.Client
	userAgent   string
	maxAttempts int
	backoff     retry.Backoff
	onRetry     func(string, int, time.Duration, error)

	account  *rate.Limiter
	calls    atomic.Int64 // requests sent, retries included
	routeRPS float64
	mu       sync.Mutex
	routes   map[string]*rate.Limiter

	// Page sizes of GET /projects and GET /projects/{id}/branches: fields
	// so that tests can page small fleets.
	pageSize       int
	branchPageSize int
}

// New returns a Client with o's defaults filled in.
func New(o Options) *Client {
	c := &Client{
		base:           strings.TrimRight(o.BaseURL, "/"),
		key:            o.APIKey,
		scrub:          o.Redact,
		orgID:          o.OrgID,
		http:           o.HTTPClient,
		userAgent:      o.UserAgent,
		maxAttempts:    o.MaxAttempts,
		onRetry:        o.OnRetry,
		routeRPS:       o.PerRouteRPS,
		routes:         map[string]*rate.Limiter{},
		pageSize:       maxProjectsLimit,
		branchPageSize: branchesPageSize,
		// Full jitter: the retries of many goroutines that failed together
		// spread out instead of coming back in a wave that trips the rate
		// limit again.
		backoff: retry.Backoff{Base: o.BaseBackoff, Max: o.MaxBackoff, Jitter: retry.FullJitter},
	}
	if c.scrub == nil {
		r := redact.New(nil)
		r.Add(o.APIKey)
		c.scrub = r.Scrub
	}
	if c.base == "" {
		c.base = DefaultBaseURL
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.backoff.Base <= 0 {
		c.backoff.Base = DefaultBaseBackoff
	}
	if c.backoff.Max <= 0 {
		c.backoff.Max = DefaultMaxBackoff
	}
	if c.backoff.Max < c.backoff.Base {
		c.backoff.Max = c.backoff.Base
	}
	if c.routeRPS <= 0 {
		c.routeRPS = DefaultPerRouteRPS
	}
	rpm := o.RequestsPerMinute
	if rpm <= 0 {
		rpm = DefaultRequestsPerMinute
	}
	limit, burst := accountLimit(rpm)
	c.account = rate.NewLimiter(limit, burst)
	return c
}

// accountLimit turns a per-minute budget into a token bucket that can never
// exceed it. Neon counts requests per minute; a bucket of size b refilled at
// r per second admits at most b + 60·r requests in any 60 s window, so the
// refill rate is (rpm − b)/60, not rpm/60. The burst is 5% of the budget
// (30 of 600): enough that a fleet's first connection URIs go out at once,
// small enough that the steady rate stays close to the budget.
func accountLimit(rpm int) (rate.Limit, int) {
	burst := max(1, rpm/20)
	if burst >= rpm {
		burst = 1
	}
	refill := float64(rpm-burst) / 60
	if refill <= 0 {
		refill = 1.0 / 60
	}
	return rate.Limit(refill), burst
}

// routeLimiter returns the limiter of one route. Its burst is 1, so in any
// second at most PerRouteRPS+1 requests go out: 36 of Neon's 40 by default.
func (c *Client) routeLimiter(route string) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.routes[route]
	if !ok {
		l = rate.NewLimiter(rate.Limit(c.routeRPS), 1)
		c.routes[route] = l
	}
	return l
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	t.MaxIdleConnsPerHost = 64 // a fleet run keeps many requests in flight to one host
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// request is one API call: route names the limiter and appears in errors;
// path is the escaped path with ids filled in.
type request struct {
	method string
	route  string // path template, e.g. "/projects/{project_id}/connection_uri"
	path   string
	query  url.Values
	// notFound, if set, explains a 404 in the caller's terms (which project,
	// database, role or branch).
	notFound string
	// body, if set, is sent as JSON (POST).
	body []byte
}

// get performs r and decodes a 2xx JSON body into out. It waits on both
// rate limiters before every attempt and retries what Neon says is safe to
// retry; see retryableStatus.
func (c *Client) get(ctx context.Context, r request, out any) error {
	r.method = http.MethodGet
	routeKey := r.method + " " + r.route
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}

	var lastErr error
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.send(ctx, routeKey, r, u, attempt, out)
		if err == nil || ctx.Err() != nil {
			return err
		}
		lastErr = err
		if !c.retryable(r.method, err) {
			break
		}
		if attempt >= c.maxAttempts {
			var te *transportError
			if errors.As(err, &te) {
				lastErr = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			break
		}
		if retryAfter > maxRetryAfter {
			lastErr = fmt.Errorf("%w (Neon asked to retry after %s; giving up)", err, retryAfter.Round(time.Second))
			break
		}
		wait := c.backoff.Delay(attempt)
		if retryAfter > wait {
			wait = retryAfter
		}
		if c.onRetry != nil {
			c.onRetry(routeKey, attempt, wait, err)
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	return lastErr
}

// send makes one attempt of r through the rate limiter. Once ctx is over,
// the error is ctx's: the caller stops retrying.
func (c *Client) send(ctx context.Context, routeKey string, r request, u string, attempt int, out any) (retryAfter time.Duration, err error) {
	if err := c.wait(ctx, routeKey); err != nil {
		return 0, err
	}
	retryAfter, err = c.attempt(ctx, r, u, attempt, out)
	if err != nil && ctx.Err() != nil {
		return 0, ctx.Err()
	}
	return retryAfter, err
}

// wait takes a token from the route's limiter, then from the account's, so
// a request leaves right after it is counted against the account budget.
// When ctx's deadline would pass before a token is free, rate.Limiter
// reports that at once instead of waiting; that is reported as
// context.DeadlineExceeded so callers need only one check.
func (c *Client) wait(ctx context.Context, route string) error {
	for _, l := range []*rate.Limiter{c.routeLimiter(route), c.account} {
		if err := l.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("neon %s: waiting for the rate limiter: %w", route, context.DeadlineExceeded)
		}
	}
	return nil
}

// attempt sends one request. On failure it returns how long the server
// asked to wait (Retry-After), or 0.
func (c *Client) attempt(ctx context.Context, r request, u string, attempt int, out any) (time.Duration, error) {
	var reqBody io.Reader
	if r.body != nil {
		reqBody = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, reqBody)
	if err != nil {
		return 0, fmt.Errorf("neon %s %s: %w", r.method, r.path, err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)

	c.calls.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, newTransportError(r.method, r.path, err, c.scrub)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, newTransportError(r.method, r.path, fmt.Errorf("read response: %w", err), c.scrub)
	}

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			return 0, nil
		}
		if err := json.Unmarshal(body, out); err != nil {
			return 0, fmt.Errorf("neon %s %s: decode response: %w (request_id %s)", r.method, r.path, err, headerRequestID(resp.Header))
		}
		return 0, nil
	}
	apiErr := newAPIError(r, resp, body, c.scrub)
	apiErr.Attempts = attempt
	return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), apiErr
}

// retryableStatus lists the answers worth another try: 429 (rate limited,
// possibly without Retry-After), 423 (another operation holds the project;
// Neon documents it as safe to retry) and the gateway/availability 5xx.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusLocked,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryable reports whether err is worth another attempt. Only GETs are
// retried: Neon warns that retrying a POST, PATCH, PUT or DELETE whose
// response was lost may repeat it.
func (c *Client) retryable(method string, err error) bool {
	if method != http.MethodGet {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return retryableStatus(apiErr.Status)
	}
	var te *transportError
	if errors.As(err, &te) {
		// Network trouble (refused, reset, timed out, cut short) is; a
		// certificate the system does not trust, a host name that does not
		// resolve, a malformed URL are not.
		return retry.TransientNetwork(te.err)
	}
	return false
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date; 0 when
// absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		// An HTTP date has whole seconds; round up so "at least" holds.
		if d := t.Sub(now); d > 0 {
			return d.Truncate(time.Second) + time.Second
		}
	}
	return 0
}
