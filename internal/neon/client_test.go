package neon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
)

const testKey = "napi_test_SECRET_k3y_0123456789abcdef"

// newEmulator starts the Neon emulator with the spec (when it can be found)
// checking every request the client sends and every answer it gets, and
// fails the test at the end if any did not conform.
func newEmulator(t *testing.T, cfg neonapi.Config) *neonapi.Server {
	t.Helper()
	specDoc, err := neonapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	cfg.Spec = specDoc
	s := neonapi.New(cfg)
	t.Cleanup(func() {
		s.Close()
		for _, v := range s.SpecViolations() {
			t.Errorf("not per the spec: %s", v)
		}
	})
	return s
}

// fastOptions are Options for tests: tiny backoffs and budgets so large
// that only the emulator's limits matter.
func fastOptions(base string) Options {
	return Options{
		BaseURL:           base,
		APIKey:            testKey,
		RequestsPerMinute: 1_000_000,
		PerRouteRPS:       100_000,
		MaxAttempts:       8,
		BaseBackoff:       time.Millisecond,
		MaxBackoff:        10 * time.Millisecond,
	}
}

// addTenants adds n projects tenant-0000… whose passwords are pw0….
func addTenants(s *neonapi.Server, n int) {
	s.AddNumberedProjects(n, func(i int) string { return fmt.Sprintf("pw%d", i) })
}

func countRoute(s *neonapi.Server, route string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Route == route {
			n++
		}
	}
	return n
}

func listAll(t *testing.T, c *Client) ([][]Project, error) {
	t.Helper()
	var pages [][]Project
	err := c.ListProjects(context.Background(), func(page []Project) error {
		pages = append(pages, page)
		return nil
	})
	return pages, err
}

func pageSizes(pages [][]Project) string {
	var n []int
	for _, p := range pages {
		n = append(n, len(p))
	}
	return fmt.Sprint(n)
}

func TestListProjectsPagesUntilShortPage(t *testing.T) {
	for _, tc := range []struct {
		projects  int
		wantPages string
		wantReqs  int
	}{
		{1000, "[400 400 200]", 3},
		{800, "[400 400]", 3}, // the third page is empty: Neon still sent a cursor on the second
		{0, "[]", 1},
		{399, "[399]", 1},
	} {
		t.Run(fmt.Sprint(tc.projects), func(t *testing.T) {
			s := newEmulator(t, neonapi.Config{})
			addTenants(s, tc.projects)
			c := New(fastOptions(s.URL()))
			pages, err := listAll(t, c)
			if err != nil {
				t.Fatal(err)
			}
			if got := pageSizes(pages); got != tc.wantPages {
				t.Errorf("pages %s, want %s", got, tc.wantPages)
			}
			reqs := s.Requests()
			if len(reqs) != tc.wantReqs {
				t.Fatalf("%d requests, want %d GET /projects", len(reqs), tc.wantReqs)
			}
			for i, r := range reqs {
				if r.Route != "GET /projects" || r.Query.Get("limit") != "400" || r.Query.Has("org_id") {
					t.Errorf("request %d: %s %v", i, r.Route, r.Query)
				}
				if (i == 0) == r.Query.Has("cursor") {
					t.Errorf("request %d cursor %q", i, r.Query.Get("cursor"))
				}
			}
			seen := map[string]bool{}
			for _, p := range pages {
				for _, pr := range p {
					if seen[pr.ID] {
						t.Errorf("project %s twice", pr.ID)
					}
					seen[pr.ID] = true
					if pr.Name == "" || pr.RegionID != "aws-us-east-2" || pr.PgVersion != 17 || pr.CreatedAt.IsZero() {
						t.Errorf("project decoded as %+v", pr)
					}
				}
			}
			if len(seen) != tc.projects {
				t.Errorf("%d distinct projects, want %d", len(seen), tc.projects)
			}
		})
	}
}

func TestListProjectsDeliversEachPageBeforeFetchingTheNext(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	addTenants(s, 12)
	c := New(fastOptions(s.URL()))
	c.pageSize = 5
	n := 0
	err := c.ListProjects(context.Background(), func(page []Project) error {
		n++
		if got := countRoute(s, "GET /projects"); got != n {
			t.Errorf("page %d delivered after %d requests", n, got)
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("%d pages, err %v", n, err)
	}
}

func TestListProjectsStopsOnCallbackError(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	addTenants(s, 12)
	c := New(fastOptions(s.URL()))
	c.pageSize = 5
	stop := errors.New("stop")
	err := c.ListProjects(context.Background(), func([]Project) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("err %v", err)
	}
	if got := countRoute(s, "GET /projects"); got != 1 {
		t.Errorf("%d pages fetched after the callback failed", got)
	}
}

func TestListProjectsFetchesUnavailableProjects(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	addTenants(s, 2)
	s.AddProject(neonapi.Project{ID: "slow-one", Unavailable: true})
	addTenants(s, 0)
	s.AddProject(neonapi.Project{ID: "after-slow"})
	s.AddProject(neonapi.Project{ID: "last-one"})
	c := New(fastOptions(s.URL()))
	c.pageSize = 3 // page 1: two projects + one unavailable id; it is full, so page 2 follows
	pages, err := listAll(t, c)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range pages {
		for _, pr := range p {
			ids = append(ids, pr.ID)
		}
	}
	if fmt.Sprint(ids) != "[tenant-0000 tenant-0001 slow-one after-slow last-one]" {
		t.Errorf("ids %v", ids)
	}
	if got := countRoute(s, "GET /projects/{project_id}"); got != 1 {
		t.Errorf("%d GET /projects/{id}", got)
	}
}

func TestConnectionURIAsksForDirectConnection(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	p := s.AddProject(neonapi.Project{
		ID: "acme-corp-1234",
		Branches: []neonapi.Branch{
			{Name: "main", Default: true},
			{ID: "br-dev-1", Name: "dev", Databases: map[string]neonapi.Database{
				"app": {URI: "postgresql://app_owner:dev@ep-dev.us-east-2.aws.neon.tech/app", Role: "app_owner"},
			}},
		},
		Databases: map[string]neonapi.Database{
			"neondb": {URI: "postgresql://neondb_owner:pw@ep-cool-1.us-east-2.aws.neon.tech/neondb?sslmode=require"},
		},
	})
	c := New(fastOptions(s.URL()))
	ctx := context.Background()

	uri, err := c.ConnectionURI(ctx, p.ID, "", "neondb", "neondb_owner", false)
	if err != nil {
		t.Fatal(err)
	}
	if uri != "postgresql://neondb_owner:pw@ep-cool-1.us-east-2.aws.neon.tech/neondb?sslmode=require" {
		t.Errorf("uri %q", uri)
	}
	r := s.Requests()[0]
	if r.Route != "GET /projects/{project_id}/connection_uri" || r.Query.Get("pooled") != "false" ||
		r.Query.Get("database_name") != "neondb" || r.Query.Get("role_name") != "neondb_owner" || r.Query.Has("branch_id") {
		t.Errorf("request %s %v", r.Route, r.Query)
	}

	uri, err = c.ConnectionURI(ctx, p.ID, "", "neondb", "neondb_owner", true)
	if err != nil || !strings.Contains(uri, "@ep-cool-1-pooler.us-east-2") {
		t.Errorf("pooled uri %q, %v", uri, err)
	}

	uri, err = c.ConnectionURI(ctx, p.ID, "br-dev-1", "app", "app_owner", false)
	if err != nil || uri != "postgresql://app_owner:dev@ep-dev.us-east-2.aws.neon.tech/app" {
		t.Errorf("branch uri %q, %v", uri, err)
	}
	if got := s.Requests()[2].Query.Get("branch_id"); got != "br-dev-1" {
		t.Errorf("branch_id %q", got)
	}
}

func TestConnectionURINotFoundNamesWhatIsMissing(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	addTenants(s, 1)
	c := New(fastOptions(s.URL()))
	_, err := c.ConnectionURI(context.Background(), "tenant-0000", "br-gone-1", "appdb", "app_owner", false)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || !IsNotFound(err) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"tenant-0000", "br-gone-1", `"appdb"`, `"app_owner"`, "not found", "request_id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if apiErr.RequestID == "" || apiErr.Route != "/projects/{project_id}/connection_uri" || apiErr.Attempts != 1 {
		t.Errorf("%+v", apiErr)
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("404 sent %d requests; it must not be retried", n)
	}
}

func TestBranchID(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	branches := []neonapi.Branch{{ID: "br-main-1", Name: "main", Default: true}}
	for i := range 12 {
		branches = append(branches, neonapi.Branch{ID: fmt.Sprintf("br-f%d", 100+i), Name: fmt.Sprintf("feature-%d", i)})
	}
	branches = append(branches, neonapi.Branch{ID: "br-odd-1", Name: "br-main-1"}) // a name that looks like another branch's id
	s.AddProject(neonapi.Project{ID: "many-branches", Branches: branches})
	c := New(fastOptions(s.URL()))
	ctx := context.Background()

	for in, want := range map[string]string{
		"main":       "br-main-1",
		"br-main-1":  "br-main-1", // the id wins over a branch named like it
		"br-f105":    "br-f105",
		"feature-1":  "br-f101",
		"feature-11": "br-f111",
	} {
		got, err := c.BranchID(ctx, "many-branches", in)
		if err != nil || got != want {
			t.Errorf("BranchID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := c.BranchID(ctx, "many-branches", "feature"); !errors.Is(err, ErrBranchNotFound) {
		t.Errorf("partial name: %v", err)
	}
	if _, err := c.BranchID(ctx, "no-such-project", "main"); !IsNotFound(err) || !strings.Contains(err.Error(), "no-such-project") {
		t.Errorf("unknown project: %v", err)
	}
	for _, r := range s.Requests() {
		if r.Route == "GET /projects/{project_id}/branches" && r.Query.Get("search") == "" {
			t.Errorf("branches listed without search: %v", r.Query)
		}
	}

	// Paging: "feature-1" matches feature-1, feature-10 and feature-11; with
	// pages of 2 (newest first) the exact match is on the second page.
	c.branchPageSize = 2
	before := countRoute(s, "GET /projects/{project_id}/branches")
	got, err := c.BranchID(ctx, "many-branches", "feature-1")
	if err != nil || got != "br-f101" {
		t.Fatalf("paged: %q, %v", got, err)
	}
	if n := countRoute(s, "GET /projects/{project_id}/branches") - before; n != 2 {
		t.Errorf("%d pages fetched, want 2", n)
	}
}

func TestRetriesLoseNothing(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	addTenants(s, 12)
	var retries atomic.Int32
	o := fastOptions(s.URL())
	o.OnRetry = func(route string, attempt int, wait time.Duration, err error) {
		retries.Add(1)
		if route != "GET /projects" || err == nil {
			t.Errorf("OnRetry(%q, %d, %s, %v)", route, attempt, wait, err)
		}
	}
	c := New(o)
	c.pageSize = 5
	s.FailNext(3, 503)
	s.FailNext(2, 423)
	s.FailNext(1, 502)
	pages, err := listAll(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := pageSizes(pages); got != "[5 5 2]" {
		t.Errorf("pages %s", got)
	}
	if n := len(s.Requests()); n != 6+3 {
		t.Errorf("%d requests, want 6 failures + 3 pages", n)
	}
	if retries.Load() != 6 {
		t.Errorf("%d retries reported", retries.Load())
	}
}

func TestRetriesGiveUpAfterMaxAttempts(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	s.FailNext(10, 503)
	o := fastOptions(s.URL())
	o.MaxAttempts = 3
	_, err := listAll(t, New(o))
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.Attempts != 3 {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(err.Error(), "list projects (page 1)") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("message %q", err)
	}
	if n := len(s.Requests()); n != 3 {
		t.Errorf("%d requests", n)
	}
}

// TestRetries429WithoutRetryAfter floods a route past the emulator's
// per-route limit, which answers 429 with no Retry-After; every call must
// still succeed with the right answer.
func TestRetries429WithoutRetryAfter(t *testing.T) {
	s := newEmulator(t, neonapi.Config{PerRouteRPS: 10})
	addTenants(s, 20)
	o := fastOptions(s.URL())
	o.MaxAttempts = 30
	o.BaseBackoff = 20 * time.Millisecond
	o.MaxBackoff = 300 * time.Millisecond
	c := New(o)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			uri, err := c.ConnectionURI(context.Background(), fmt.Sprintf("tenant-%04d", i), "", "neondb", "neondb_owner", false)
			if err != nil {
				t.Error(err)
				return
			}
			if !strings.Contains(uri, fmt.Sprintf(":pw%d@", i)) {
				t.Errorf("tenant %d got %s", i, uri)
			}
		})
	}
	wg.Wait()
	if _, limited := s.Stats(); limited == 0 {
		t.Error("the emulator never rate limited; the test proves nothing")
	}
}

// retryAfterServer answers 429 (or status) with the given Retry-After to
// the first request and 200 to the rest, recording when each arrived.
func retryAfterServer(t *testing.T, status int, retryAfter func() string) (*httptest.Server, *[]time.Time) {
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.Header().Set("Retry-After", retryAfter())
			w.WriteHeader(status)
			fmt.Fprint(w, `{"code":"","message":"slow down","request_id":"req-1"}`)
			return
		}
		fmt.Fprint(w, `{"uri":"postgresql://u:p@h/db","unknown_field":{"x":1}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &times
}

func TestRetryAfterIsHonoured(t *testing.T) {
	for name, tc := range map[string]struct {
		status     int
		retryAfter func() string
		min        time.Duration
	}{
		"429 seconds": {429, func() string { return "1" }, time.Second},
		"503 seconds": {503, func() string { return "1" }, time.Second},
		"429 date":    {429, func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, times := retryAfterServer(t, tc.status, tc.retryAfter)
			c := New(fastOptions(srv.URL))
			uri, err := c.ConnectionURI(context.Background(), "p-1", "", "db", "role", false)
			if err != nil || uri != "postgresql://u:p@h/db" {
				t.Fatalf("%q, %v", uri, err)
			}
			if len(*times) != 2 {
				t.Fatalf("%d requests", len(*times))
			}
			if gap := (*times)[1].Sub((*times)[0]); gap < tc.min {
				t.Errorf("retried after %s; Retry-After asked for at least %s", gap, tc.min)
			}
		})
	}
}

func TestRetryAfterTooLongFailsAtOnce(t *testing.T) {
	srv, times := retryAfterServer(t, 429, func() string { return "3600" })
	start := time.Now()
	_, err := New(fastOptions(srv.URL)).ConnectionURI(context.Background(), "p-1", "", "db", "role", false)
	if err == nil || !strings.Contains(err.Error(), "retry after 1h0m0s") || time.Since(start) > time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.RequestID != "req-1" {
		t.Errorf("%+v", apiErr)
	}
	if len(*times) != 1 {
		t.Errorf("%d requests", len(*times))
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{
		{400, "bad things"},
		{401, "check neon-api-key"},
		{403, "lacks access"},
		{404, "not found"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				w.Header().Set("X-Neon-Request-Id", "hdr-req-9")
				w.WriteHeader(tc.status)
				fmt.Fprint(w, `{"code":"","message":"bad things"}`)
			}))
			defer srv.Close()
			_, err := listAll(t, New(fastOptions(srv.URL)))
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tc.status {
				t.Fatalf("err %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) || apiErr.RequestID != "hdr-req-9" || !strings.Contains(err.Error(), "hdr-req-9") {
				t.Errorf("message %q", err)
			}
			if n.Load() != 1 {
				t.Errorf("%d requests; %d must not be retried", n.Load(), tc.status)
			}
		})
	}
	t.Run("401 from the emulator", func(t *testing.T) {
		s := newEmulator(t, neonapi.Config{APIKey: "napi_the_right_one"})
		_, err := listAll(t, New(fastOptions(s.URL())))
		if !strings.Contains(err.Error(), "the API key was rejected; check neon-api-key") || len(s.Requests()) != 1 {
			t.Errorf("err %v after %d requests", err, len(s.Requests()))
		}
	})
}

func TestOrgIDRequired(t *testing.T) {
	s := newEmulator(t, neonapi.Config{RequireOrgID: "org-fleet-1234"})
	addTenants(s, 3)

	_, err := listAll(t, New(fastOptions(s.URL())))
	if !IsOrgIDRequired(err) {
		t.Fatalf("IsOrgIDRequired(%v) = false", err)
	}
	if !strings.Contains(err.Error(), "set neon-org-id") || !strings.Contains(err.Error(), "list projects (page 1)") {
		t.Errorf("message %q", err)
	}
	if IsOrgIDRequired(errors.New("org_id is required")) {
		t.Error("a plain error must not classify")
	}

	o := fastOptions(s.URL())
	o.OrgID = "org-fleet-1234"
	pages, err := listAll(t, New(o))
	if err != nil || pageSizes(pages) != "[3]" {
		t.Fatalf("%s, %v", pageSizes(pages), err)
	}
	last := s.Requests()[len(s.Requests())-1]
	if last.Query.Get("org_id") != "org-fleet-1234" {
		t.Errorf("query %v", last.Query)
	}

	o.OrgID = "org-other-1"
	pages, err = listAll(t, New(o))
	if err != nil || len(pages) != 0 {
		t.Errorf("wrong org: %d pages, %v", len(pages), err)
	}
}

func TestCancelStopsPromptly(t *testing.T) {
	check := func(t *testing.T, c *Client, cancelAfter time.Duration, want error) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(cancelAfter, cancel)
		start := time.Now()
		_, err := c.ConnectionURI(ctx, "tenant-0000", "", "neondb", "neondb_owner", false)
		if !errors.Is(err, want) {
			t.Errorf("err %v, want %v", err, want)
		}
		if d := time.Since(start); d > cancelAfter+500*time.Millisecond {
			t.Errorf("returned %s after the call, %s after cancel", d, d-cancelAfter)
		}
	}
	t.Run("during backoff", func(t *testing.T) {
		s := newEmulator(t, neonapi.Config{})
		addTenants(s, 1)
		s.FailNext(100, 503)
		o := fastOptions(s.URL())
		o.BaseBackoff, o.MaxBackoff = 10*time.Second, 10*time.Second
		check(t, New(o), 100*time.Millisecond, context.Canceled)
	})
	t.Run("during a request", func(t *testing.T) {
		s := newEmulator(t, neonapi.Config{Latency: 10 * time.Second})
		addTenants(s, 1)
		check(t, New(fastOptions(s.URL())), 100*time.Millisecond, context.Canceled)
	})
	// spentLimiter is a client allowed one request a minute that has just
	// made it.
	spentLimiter := func(t *testing.T) *Client {
		s := newEmulator(t, neonapi.Config{})
		addTenants(s, 1)
		o := fastOptions(s.URL())
		o.RequestsPerMinute = 1
		c := New(o)
		if _, err := c.ConnectionURI(context.Background(), "tenant-0000", "", "neondb", "neondb_owner", false); err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("waiting for the rate limiter", func(t *testing.T) {
		check(t, spentLimiter(t), 100*time.Millisecond, context.Canceled)
	})
	t.Run("deadline sooner than the rate limiter allows", func(t *testing.T) {
		c := spentLimiter(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.ConnectionURI(ctx, "tenant-0000", "", "neondb", "neondb_owner", false)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Errorf("err %v after %s", err, time.Since(start))
		}
	})
}

// TestAPIKeyNeverInErrors provokes every kind of failure, including a
// server that echoes the Authorization header back, and checks that the key
// appears in no error text.
func TestAPIKeyNeverInErrors(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("database_name") {
		case "json":
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"code":%q,"message":"bad header %s","request_id":"r"}`, r.Header.Get("Authorization"), r.Header.Get("Authorization"))
		case "html":
			w.WriteHeader(502)
			fmt.Fprintf(w, "<html>proxy error for %s</html>", r.Header.Get("Authorization"))
		}
	}))
	defer echo.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	emu := newEmulator(t, neonapi.Config{APIKey: "napi_a_different_key"})
	busy := newEmulator(t, neonapi.Config{})
	busy.FailNext(100, 503)

	var onRetryErrs []error
	var mu sync.Mutex
	client := func(base string) *Client {
		o := fastOptions(base)
		o.MaxAttempts = 2
		o.OnRetry = func(_ string, _ int, _ time.Duration, err error) {
			mu.Lock()
			onRetryErrs = append(onRetryErrs, err)
			mu.Unlock()
		}
		return New(o)
	}
	ctx := context.Background()
	var errs []error
	for _, db := range []string{"json", "html"} {
		_, err := client(echo.URL).ConnectionURI(ctx, "p-1", "", db, "r", false)
		errs = append(errs, err)
	}
	_, err := client(closed.URL).ConnectionURI(ctx, "p-1", "", "db", "r", false)
	errs = append(errs, err)
	_, err = listAll(t, client(emu.URL()))
	errs = append(errs, err)
	_, err = listAll(t, client(busy.URL()))
	errs = append(errs, err)
	_, err = client(busy.URL()).BranchID(ctx, "p-1", "main")
	errs = append(errs, err)

	for _, err := range append(errs, onRetryErrs...) {
		if err == nil {
			t.Fatal("a failure did not fail")
		}
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(text, testKey) {
				t.Errorf("API key in error: %s", text)
			}
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && strings.Contains(fmt.Sprintf("%#v", *apiErr), testKey) {
			t.Errorf("API key in APIError fields: %#v", *apiErr)
		}
	}
	if !strings.Contains(errs[0].Error(), "***") {
		t.Errorf("echoed key not visibly redacted: %v", errs[0])
	}
	if len(onRetryErrs) == 0 {
		t.Error("no retries happened; the OnRetry path is untested")
	}
}

func TestSendsHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		fmt.Fprint(w, `{"projects":[]}`)
	}))
	defer srv.Close()
	o := fastOptions(srv.URL + "/")
	o.UserAgent = "pgfleet-test/1"
	if _, err := listAll(t, New(o)); err != nil {
		t.Fatal(err)
	}
	if got.Get("Authorization") != "Bearer "+testKey || got.Get("User-Agent") != "pgfleet-test/1" || got.Get("Accept") != "application/json" {
		t.Errorf("headers %v", got)
	}
}

// TestAccountLimitNeverExceedsBudget replays the account limiter on a
// simulated clock, as fast as it admits requests, and checks that no 60 s
// window ever holds more than RequestsPerMinute.
func TestAccountLimitNeverExceedsBudget(t *testing.T) {
	for _, rpm := range []int{1, 7, 60, 600, 700} {
		c := New(Options{RequestsPerMinute: rpm})
		l := c.account
		start := time.Now()
		var admitted []time.Time
		for ms := 0; ms <= 150_000; ms += 5 {
			now := start.Add(time.Duration(ms) * time.Millisecond)
			for l.AllowN(now, 1) {
				admitted = append(admitted, now)
			}
		}
		lo, most := 0, 0
		for hi, t1 := range admitted {
			for t1.Sub(admitted[lo]) >= time.Minute {
				lo++
			}
			most = max(most, hi-lo+1)
		}
		if most > rpm {
			t.Errorf("rpm %d: %d requests in one minute", rpm, most)
		}
		if rpm >= 60 && most < rpm*9/10 {
			t.Errorf("rpm %d: only %d a minute; the budget is wasted", rpm, most)
		}
	}
}

// TestLimitersAreShared checks that concurrent callers share one per-route
// budget (the emulator would answer 429 otherwise; no retries are allowed)
// and that the account budget spans routes.
func TestLimitersAreShared(t *testing.T) {
	t.Run("per route", func(t *testing.T) {
		s := newEmulator(t, neonapi.Config{PerRouteRPS: 14})
		addTenants(s, 15)
		o := fastOptions(s.URL())
		o.PerRouteRPS = 10
		o.MaxAttempts = 1
		c := New(o)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 15 {
			wg.Go(func() {
				if _, err := c.ConnectionURI(context.Background(), fmt.Sprintf("tenant-%04d", i), "", "neondb", "neondb_owner", false); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if d := time.Since(start); d < 1300*time.Millisecond {
			t.Errorf("15 requests at 10/s took only %s", d)
		}
		// Another route is not held back by this one's budget.
		start = time.Now()
		if _, err := c.Project(context.Background(), "tenant-0000"); err != nil || time.Since(start) > 200*time.Millisecond {
			t.Errorf("other route: %v after %s", err, time.Since(start))
		}
	})
	t.Run("account", func(t *testing.T) {
		s := newEmulator(t, neonapi.Config{})
		addTenants(s, 1)
		o := fastOptions(s.URL())
		o.RequestsPerMinute = 60 // burst 3, then 0.95/s
		c := New(o)
		ctx := context.Background()
		start := time.Now()
		c.ListProjects(ctx, func([]Project) error { return nil })                //nolint:errcheck
		c.Project(ctx, "tenant-0000")                                            //nolint:errcheck
		c.BranchID(ctx, "tenant-0000", "main")                                   //nolint:errcheck
		c.ConnectionURI(ctx, "tenant-0000", "", "neondb", "neondb_owner", false) //nolint:errcheck
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("4 requests on 4 routes with a burst of 3 took only %s", d)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-3":                            0,
		"7":                             7 * time.Second,
		"soon":                          0,
		"Wed, 01 Jan 2025 12:00:05 GMT": 6 * time.Second,
		"Wed, 01 Jan 2025 11:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestBackoffIsBounded(t *testing.T) {
	c := New(Options{BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for attempt := 1; attempt <= 40; attempt++ {
		ceiling := min(time.Second, 100*time.Millisecond<<min(attempt-1, 20))
		for range 50 {
			if d := c.backoff.Delay(attempt); d <= 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %s, ceiling %s", attempt, d, ceiling)
			}
		}
	}
}

func TestTransportErrorsAreRetried(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			// Cut the connection without an answer: the client sees EOF.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		fmt.Fprint(w, `{"uri":"postgresql://u:p@h/db"}`)
	}))
	defer srv.Close()
	uri, err := New(fastOptions(srv.URL)).ConnectionURI(context.Background(), "p-1", "", "db", "role", false)
	if err != nil || uri != "postgresql://u:p@h/db" || n.Load() != 3 {
		t.Fatalf("%q, %v after %d requests", uri, err, n.Load())
	}
}
