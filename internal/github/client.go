// Package github is pgfleet's client for GitHub Actions secrets, variables
// and environments, built on go-github v66.
//
// It writes secrets to a repository, to environments of a repository, or to
// an organization; encrypts each value with the target's public key as a
// libsodium sealed box; and reads back the updated_at GitHub reports after
// each write (GitHub never returns a secret's value, so that timestamp and a
// fingerprint kept in a variable are all a caller can compare later).
//
// Routes, relative to the API root (api.github.com or a GitHub Enterprise
// Server's /api/v3); {base} is /repos/{owner}/{repo}/actions for a
// repository, /repos/{owner}/{repo}/environments/{environment_name} for an
// environment (the route GitHub documents today; go-github v66 would use
// /repositories/{id}/environments/…), and /orgs/{org}/actions for an
// organization:
//
//	GET    {base}/secrets/public-key
//	GET    {base}/secrets                   (per_page=100, every page)
//	GET    {base}/secrets/{secret_name}
//	PUT    {base}/secrets/{secret_name}
//	DELETE {base}/secrets/{secret_name}
//	GET    {base}/variables                 (per_page=30, every page)
//	GET    {base}/variables/{name}
//	POST   {base}/variables
//	PATCH  {base}/variables/{name}
//	DELETE {base}/variables/{name}
//	GET    /repos/{owner}/{repo}/actions/organization-secrets (per_page=100, every page)
//	GET    /repos/{owner}/{repo}/environments   (per_page=100, every page)
//	GET    /repos/{owner}/{repo}/environments/{environment_name}
//	PUT    /repos/{owner}/{repo}/environments/{environment_name}
//	GET    /repos/{owner}/{repo}
//
// Every request is paced for GitHub's secondary rate limits (see Options);
// rate-limit answers are waited out, not returned.
package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v66/github"

	"github.com/pgfleet/pgfleet/internal/httpurl"
	"github.com/pgfleet/pgfleet/internal/redact"
)

// Defaults for Options.
const (
	DefaultBaseURL = "https://api.github.com/"
	// DefaultWriteGap keeps writes within GitHub's 80 content-creating
	// requests a minute: 60 s / 80.
	DefaultWriteGap = 750 * time.Millisecond
	// DefaultWritesPerHour is GitHub's limit of 500 content-creating
	// requests an hour, over any sliding hour.
	DefaultWritesPerHour = 500
	// DefaultReadsPerMinute keeps reads well inside GitHub's 900 points a
	// minute for REST requests (a read costs 1).
	DefaultReadsPerMinute = 750
	// DefaultMaxRateLimitRetries bounds how many rate-limit answers one
	// request waits out before it fails.
	DefaultMaxRateLimitRetries = 10
	DefaultUserAgent           = "pgfleet"
	// DefaultAttemptTimeout bounds one HTTP attempt.
	DefaultAttemptTimeout = 60 * time.Second
)

// Options configures a Client. The zero value of every field means its
// documented default.
type Options struct {
	// BaseURL is the REST API root: github-api-url, GITHUB_API_URL on a
	// runner (https://HOST/api/v3 on GitHub Enterprise Server). Default
	// DefaultBaseURL.
	BaseURL string
	// Token is sent as a Bearer token. It never appears in an error.
	Token string
	// Redact scrubs text that came from outside the client (GitHub's error
	// messages, transport errors) before it goes into an error. Default: a
	// redactor that knows Token. pgfleet passes its one redactor's Scrub.
	Redact func(string) string
	// HTTPClient sends the requests; its Transport is wrapped by the
	// client's pacing, and its Timeout bounds each attempt (not the waits
	// between attempts). Default: a client with DefaultAttemptTimeout.
	HTTPClient *http.Client
	// UserAgent is sent with every request. Default DefaultUserAgent.
	UserAgent string

	// WriteGap is the least time between the starts of two writes (PUT,
	// POST, PATCH, DELETE), which are also sent one at a time. Default
	// DefaultWriteGap; negative for none.
	WriteGap time.Duration
	// WritesPerHour bounds writes over any sliding hour. Default
	// DefaultWritesPerHour; negative for no bound.
	WritesPerHour int
	// ReadsPerMinute bounds reads (GET) over any sliding minute. Default
	// DefaultReadsPerMinute; negative for no bound.
	ReadsPerMinute int
	// MaxRateLimitRetries bounds the rate-limit answers one request waits
	// out. Default DefaultMaxRateLimitRetries.
	MaxRateLimitRetries int
	// Clock tells the time and waits. Default SystemClock.
	Clock Clock
	// OnWait, if set, is told about every wait other than the routine gap
	// between writes, before it starts: a rate-limit answer, the hourly
	// budget, a retried server error. It may be called from several
	// goroutines.
	OnWait func(Wait)
}

// Client talks to GitHub's REST API. It is safe for concurrent use; writes
// from every goroutine share one queue, which is the point of having one.
type Client struct {
	gh    *gh.Client
	scrub func(string) string
	clock Clock
	pace  *pacer

	mu   sync.Mutex
	keys map[string]PublicKey // by the target's secrets path
}

// New returns a Client with o's defaults filled in.
func New(o Options) (*Client, error) {
	base := o.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, ok := httpurl.Parse(base)
	if !ok {
		return nil, fmt.Errorf("github: API URL %q is not an http(s) URL", base)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	clock := o.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	gap := o.WriteGap
	if gap == 0 {
		gap = DefaultWriteGap
	}
	perHour := o.WritesPerHour
	if perHour == 0 {
		perHour = DefaultWritesPerHour
	}
	readsPerMinute := o.ReadsPerMinute
	if readsPerMinute == 0 {
		readsPerMinute = DefaultReadsPerMinute
	}
	retries := o.MaxRateLimitRetries
	if retries <= 0 {
		retries = DefaultMaxRateLimitRetries
	}
	hc := &http.Client{Timeout: DefaultAttemptTimeout}
	if o.HTTPClient != nil {
		copied := *o.HTTPClient
		hc = &copied
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	// http.Client's Timeout would also count the waits for GitHub's rate
	// limits, which can be an hour: it bounds each attempt instead.
	p := newPacer(next, hc.Timeout, clock, gap, perHour, readsPerMinute, retries, o.OnWait)
	hc.Transport, hc.Timeout = p, 0

	g := gh.NewClient(hc)
	if o.Token != "" {
		g = g.WithAuthToken(o.Token)
	}
	g.BaseURL = u
	g.UserAgent = o.UserAgent
	if g.UserAgent == "" {
		g.UserAgent = DefaultUserAgent
	}
	scrub := o.Redact
	if scrub == nil {
		r := redact.New(nil)
		r.Add(o.Token)
		scrub = r.Scrub
	}
	return &Client{gh: g, scrub: scrub, clock: clock, pace: p, keys: map[string]PublicKey{}}, nil
}

// Stats counts the requests, writes and waits of the client so far.
func (c *Client) Stats() Stats { return c.pace.snapshot() }

// SetWriteGap changes the least time between two writes from now on, as
// Options.WriteGap (0: DefaultWriteGap; negative: none): a caller that
// learns how much it will write after its reads picks its pace then, on
// the same client, so that reads and writes share one picture of GitHub's
// limits.
func (c *Client) SetWriteGap(d time.Duration) {
	if d == 0 {
		d = DefaultWriteGap
	}
	c.pace.setGap(d)
}

// WriteGap is the least time between two writes now: the gap asked for,
// or wider while GitHub refuses writes as too fast.
func (c *Client) WriteGap() time.Duration { return c.Stats().WriteGap }

// op describes one operation for errors and Wait.Op.
type op struct {
	verb, name, target string
}

func (o op) String() string {
	s := o.verb
	if o.name != "" {
		s += " " + o.name
		if o.target != "" {
			s += " in"
		}
	}
	if o.target != "" {
		s += " " + o.target
	}
	return s
}

// do sends one request through go-github and decodes the answer into v.
func (c *Client) do(ctx context.Context, o op, method, path string, body, v any) (*gh.Response, error) {
	req, err := c.gh.NewRequest(method, path, body)
	if err != nil {
		return nil, &Error{Op: o.verb, Name: o.name, Target: o.target, Err: err}
	}
	resp, err := c.gh.Do(withOp(ctx, o.String()), req, v)
	if err != nil {
		return resp, c.newError(o, resp, err)
	}
	return resp, nil
}

// list fetches every page of a list route: page 1, 2, … until GitHub's
// Link header names no next page. each is called with every page's answer.
func list[P any](ctx context.Context, c *Client, o op, path string, perPage int, each func(*P)) error {
	for page := 1; ; {
		var p P
		q := fmt.Sprintf("%s?per_page=%d&page=%d", path, perPage, page)
		resp, err := c.do(ctx, o, http.MethodGet, q, nil, &p)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && page > 1 {
				e.Op = fmt.Sprintf("%s (page %d)", e.Op, page)
			}
			return err
		}
		each(&p)
		if resp.NextPage <= page {
			break
		}
		page = resp.NextPage
	}
	return nil
}

// listItems is list for the routes whose pages wrap a slice of items: a
// refusal before anything is sent when invalid is not nil (the arguments'
// check), else items picks each page's items and of converts every one
// (GitHub sends no nil ones; one would be skipped, not dereferenced).
func listItems[P, I, T any](ctx context.Context, c *Client, o op, invalid error, path string, perPage int, items func(*P) []*I, of func(*I) T) ([]T, error) {
	if invalid != nil {
		return nil, local(o, invalid)
	}
	var out []T
	err := list(ctx, c, o, path, perPage, func(p *P) {
		for _, x := range items(p) {
			if x != nil {
				out = append(out, of(x))
			}
		}
	})
	return out, err
}

// local is an operation refused before anything was sent.
func local(o op, err error) *Error {
	return &Error{Op: o.verb, Name: o.name, Target: o.target, Err: err}
}

func timeOf(t *gh.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}
