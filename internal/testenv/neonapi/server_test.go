package neonapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

const testKey = "napi_test_key_0123456789"

// loadSpec loads Neon's spec (the copy in testdata, or $NEON_OPENAPI_SPEC).
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestEmbeddedSpecMatchesShared catches drift between the copy of the spec
// in testdata and shared/neon-openapi.json, when shared/ is beside the repo.
func TestEmbeddedSpecMatchesShared(t *testing.T) {
	t.Setenv(SpecEnv, "")
	path, err := FindSpec(".")
	if err != nil {
		t.Skipf("shared/neon-openapi.json is not beside this checkout, nothing to compare: %v", err)
	}
	shared, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, embeddedSpec) {
		t.Fatalf("testdata/neon-openapi.json differs from %s: copy it over and re-run the tests", path)
	}
}

// conformance checks, independently of the server's own Config.Spec
// checking, that every response a test provokes matches the spec's schema
// for its operation and status.
type conformance struct {
	t      *testing.T
	router routers.Router
	client *http.Client
	mu     sync.Mutex
	seen   map[string]int // "GET /projects 200" -> count
}

func newConformance(t *testing.T, s *Server) *conformance {
	spec := loadSpec(t)
	doc := *spec
	doc.Servers = openapi3.Servers{{URL: s.URL()}}
	router, err := gorillamux.NewRouter(&doc)
	if err != nil {
		t.Fatalf("route spec: %v", err)
	}
	return &conformance{t: t, router: router, client: &http.Client{Timeout: 10 * time.Second}, seen: map[string]int{}}
}

type exchange struct {
	Status    int
	Header    http.Header
	Body      []byte
	RequestID string
}

func (e exchange) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(e.Body, v); err != nil {
		t.Fatalf("decode %s: %v", e.Body, err)
	}
}

func (e exchange) generalError(t *testing.T) generalError {
	t.Helper()
	var g struct {
		RequestID *string `json:"request_id"`
		Code      *string `json:"code"`
		Message   *string `json:"message"`
	}
	e.decode(t, &g)
	if g.Code == nil || g.Message == nil || g.RequestID == nil {
		t.Fatalf("error body lacks code, message or request_id: %s", e.Body)
	}
	if *g.RequestID != e.Header.Get("X-Request-Id") {
		t.Errorf("body request_id %q differs from X-Request-Id %q", *g.RequestID, e.Header.Get("X-Request-Id"))
	}
	return generalError{RequestID: *g.RequestID, Code: *g.Code, Message: *g.Message}
}

// get requests path (relative to the API base, with query) with key (""
// for none) and validates the response against the spec.
func (c *conformance) get(base, key, pathAndQuery string) exchange {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+pathAndQuery, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		c.t.Errorf("GET %s: no X-Request-Id header", pathAndQuery)
	}

	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("GET %s: not an operation of the spec: %v", pathAndQuery, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Errorf("GET %s -> %d does not match the spec: %v\nbody: %s", pathAndQuery, resp.StatusCode, err, body)
	}
	c.mu.Lock()
	c.seen[fmt.Sprintf("%s %s %d", route.Method, route.Path, resp.StatusCode)]++
	c.mu.Unlock()
	return exchange{Status: resp.StatusCode, Header: resp.Header, Body: body, RequestID: resp.Header.Get("X-Request-Id")}
}

func wantStatus(t *testing.T, e exchange, want int) {
	t.Helper()
	if e.Status != want {
		t.Fatalf("status %d, want %d; body %s", e.Status, want, e.Body)
	}
}

type projectsPage struct {
	Projects []struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		OrgID string `json:"org_id"`
	} `json:"projects"`
	Unavailable []string `json:"unavailable_project_ids"`
	Pagination  *struct {
		Cursor string `json:"cursor"`
	} `json:"pagination"`
}

func addProjects(s *Server, n int) []Project {
	var out []Project
	for i := range n {
		out = append(out, s.AddProject(Project{
			ID:        fmt.Sprintf("tenant-%03d", i),
			Name:      fmt.Sprintf("Tenant %d", i),
			Databases: map[string]Database{"neondb": {URI: fmt.Sprintf("postgresql://neondb_owner:pw%d@127.0.0.1:5432/t%d?sslmode=disable", i, i)}},
		}))
	}
	return out
}

// TestConformance provokes every kind of answer the emulator gives and
// checks each against neon-openapi.json.
func TestConformance(t *testing.T) {
	s := New(Config{APIKey: testKey})
	defer s.Close()
	c := newConformance(t, s)
	addProjects(s, 25)
	base := s.URL()

	t.Run("projects pages carry a cursor to the end", func(t *testing.T) {
		var ids []string
		cursor := ""
		var pages []int
		for {
			q := url.Values{"limit": {"10"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			e := c.get(base, testKey, "/projects?"+q.Encode())
			wantStatus(t, e, 200)
			var p projectsPage
			e.decode(t, &p)
			pages = append(pages, len(p.Projects))
			for _, pr := range p.Projects {
				ids = append(ids, pr.ID)
			}
			if len(p.Projects) > 0 && (p.Pagination == nil || p.Pagination.Cursor == "") {
				t.Fatalf("page %d has no cursor: %s", len(pages), e.Body)
			}
			if len(p.Projects) < 10 {
				break
			}
			cursor = p.Pagination.Cursor
		}
		if fmt.Sprint(pages) != "[10 10 5]" {
			t.Errorf("page sizes %v, want [10 10 5]", pages)
		}
		if len(ids) != 25 || ids[0] != "tenant-000" || ids[24] != "tenant-024" {
			t.Errorf("ids not in stable creation order: %v", ids)
		}
	})

	t.Run("default limit is 10", func(t *testing.T) {
		var p projectsPage
		e := c.get(base, testKey, "/projects")
		wantStatus(t, e, 200)
		e.decode(t, &p)
		if len(p.Projects) != 10 {
			t.Errorf("%d projects, want the spec's default 10", len(p.Projects))
		}
	})

	t.Run("empty page after an exact multiple still has a cursor", func(t *testing.T) {
		e := c.get(base, testKey, "/projects?limit=25")
		var p projectsPage
		e.decode(t, &p)
		e = c.get(base, testKey, "/projects?limit=25&cursor="+p.Pagination.Cursor)
		wantStatus(t, e, 200)
		var last projectsPage
		e.decode(t, &last)
		if len(last.Projects) != 0 || last.Pagination == nil || last.Pagination.Cursor == "" {
			t.Errorf("want an empty page with a cursor, got %s", e.Body)
		}
	})

	for _, limit := range []string{"0", "401", "x"} {
		t.Run("limit "+limit+" is refused", func(t *testing.T) {
			e := c.get(base, testKey, "/projects?limit="+limit)
			wantStatus(t, e, 400)
			e.generalError(t)
		})
	}

	t.Run("401 without or with a wrong key", func(t *testing.T) {
		for _, key := range []string{"", "napi_wrong"} {
			e := c.get(base, key, "/projects")
			wantStatus(t, e, 401)
			e.generalError(t)
		}
	})

	t.Run("connection_uri", func(t *testing.T) {
		e := c.get(base, testKey, "/projects/tenant-003/connection_uri?database_name=neondb&role_name=neondb_owner&pooled=false")
		wantStatus(t, e, 200)
		var r struct{ URI string }
		e.decode(t, &r)
		if r.URI != "postgresql://neondb_owner:pw3@127.0.0.1:5432/t3?sslmode=disable" {
			t.Errorf("uri %q", r.URI)
		}
		e = c.get(base, testKey, "/projects/tenant-003/connection_uri?database_name=neondb&role_name=neondb_owner&pooled=true")
		wantStatus(t, e, 200)
		e.decode(t, &r)
		if r.URI != "postgresql://neondb_owner:pw3@127-pooler.0.0.1:5432/t3?sslmode=disable" {
			t.Errorf("pooled uri %q", r.URI)
		}
	})

	for name, q := range map[string]string{
		"unknown database": "/projects/tenant-003/connection_uri?database_name=nope&role_name=neondb_owner",
		"unknown role":     "/projects/tenant-003/connection_uri?database_name=neondb&role_name=nope",
		"unknown project":  "/projects/nope/connection_uri?database_name=neondb&role_name=neondb_owner",
		"unknown branch":   "/projects/tenant-003/connection_uri?database_name=neondb&role_name=neondb_owner&branch_id=br-nope",
		"unknown get":      "/projects/nope",
		"unknown branches": "/projects/nope/branches",
	} {
		t.Run("404 "+name, func(t *testing.T) {
			e := c.get(base, testKey, q)
			wantStatus(t, e, 404)
			if g := e.generalError(t); g.Message == "" {
				t.Error("empty message")
			}
		})
	}

	t.Run("get project", func(t *testing.T) {
		e := c.get(base, testKey, "/projects/tenant-007")
		wantStatus(t, e, 200)
	})

	t.Run("503 and 423 injected", func(t *testing.T) {
		s.FailNext(1, 503)
		s.FailNext(1, 423)
		e := c.get(base, testKey, "/projects")
		wantStatus(t, e, 503)
		e.generalError(t)
		e = c.get(base, testKey, "/projects/tenant-001/connection_uri?database_name=neondb&role_name=neondb_owner")
		wantStatus(t, e, 423)
		if g := e.generalError(t); !strings.Contains(g.Message, "running operations") {
			t.Errorf("423 message %q", g.Message)
		}
		wantStatus(t, c.get(base, testKey, "/projects"), 200)
	})

	for _, status := range []string{"GET /projects 200", "GET /projects 400", "GET /projects 401",
		"GET /projects 503", "GET /projects/{project_id}/connection_uri 200",
		"GET /projects/{project_id}/connection_uri 404", "GET /projects/{project_id}/connection_uri 423"} {
		if c.seen[status] == 0 {
			t.Errorf("no %s response was checked", status)
		}
	}
}

func TestConformanceBranches(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	c := newConformance(t, s)
	p := s.AddProject(Project{
		ID: "branchy-project-1",
		Branches: []Branch{
			{ID: "br-main-1", Name: "main", Default: true},
			{ID: "br-dev-2", Name: "dev"},
			{ID: "br-staging-3", Name: "staging"},
		},
	})
	if len(p.Branches) != 3 {
		t.Fatalf("branches %v", p.Branches)
	}
	type page struct {
		Branches []struct {
			ID, Name string
			Default  bool
		}
		Pagination struct{ Next string }
	}
	var got page
	e := c.get(s.URL(), "", "/projects/branchy-project-1/branches?search=dev")
	wantStatus(t, e, 200)
	e.decode(t, &got)
	if len(got.Branches) != 1 || got.Branches[0].ID != "br-dev-2" {
		t.Errorf("search dev: %s", e.Body)
	}

	var names []string
	cursor := ""
	for range 5 {
		q := "/projects/branchy-project-1/branches?limit=2&sort_by=name&sort_order=asc"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		e := c.get(s.URL(), "", q)
		wantStatus(t, e, 200)
		var pg page
		e.decode(t, &pg)
		for _, b := range pg.Branches {
			names = append(names, b.Name)
		}
		if cursor = pg.Pagination.Next; cursor == "" {
			break
		}
	}
	if fmt.Sprint(names) != "[dev main staging]" {
		t.Errorf("paged branches %v", names)
	}

	s2 := s.AddProject(Project{ID: "plain-project"})
	if len(s2.Branches) != 1 || s2.Branches[0].Name != "main" || !s2.Branches[0].Default || !strings.HasPrefix(s2.Branches[0].ID, "br-") {
		t.Errorf("default branch %+v", s2.Branches)
	}
}

func TestConformanceOrgIDRequired(t *testing.T) {
	s := New(Config{RequireOrgID: "org-fleet-12345678"})
	defer s.Close()
	c := newConformance(t, s)
	addProjects(s, 3)
	s.AddProject(Project{ID: "other-org-project", OrgID: "org-other-1"})

	e := c.get(s.URL(), "", "/projects?limit=400")
	wantStatus(t, e, 400)
	if g := e.generalError(t); g.Message != OrgIDRequiredMessage || g.Code != "" {
		t.Errorf("got %+v", g)
	}

	var p projectsPage
	e = c.get(s.URL(), "", "/projects?limit=400&org_id=org-fleet-12345678")
	wantStatus(t, e, 200)
	e.decode(t, &p)
	if len(p.Projects) != 3 || p.Projects[0].OrgID != "org-fleet-12345678" {
		t.Errorf("org projects: %s", e.Body)
	}

	p = projectsPage{}
	e = c.get(s.URL(), "", "/projects?limit=400&org_id=org-wrong-1")
	wantStatus(t, e, 200)
	e.decode(t, &p)
	if len(p.Projects) != 0 {
		t.Errorf("wrong org should list nothing: %s", e.Body)
	}
}

func TestConformanceUnavailable(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	c := newConformance(t, s)
	addProjects(s, 2)
	s.AddProject(Project{ID: "slow-project", Unavailable: true})
	addProjects(s, 0)

	var p projectsPage
	e := c.get(s.URL(), "", "/projects?limit=2")
	wantStatus(t, e, 200)
	e.decode(t, &p)
	if len(p.Projects) != 2 || len(p.Unavailable) != 0 {
		t.Fatalf("first page %s", e.Body)
	}
	p = projectsPage{}
	e = c.get(s.URL(), "", "/projects?limit=2&cursor="+"tenant-001")
	wantStatus(t, e, 200)
	e.decode(t, &p)
	if len(p.Projects) != 0 || fmt.Sprint(p.Unavailable) != "[slow-project]" || p.Pagination.Cursor != "slow-project" {
		t.Errorf("second page %s", e.Body)
	}
	wantStatus(t, c.get(s.URL(), "", "/projects/slow-project"), 200)
}

func TestConformanceRateLimits(t *testing.T) {
	t.Run("account", func(t *testing.T) {
		s := New(Config{RequestsPerMinute: 3})
		defer s.Close()
		c := newConformance(t, s)
		for range 3 {
			wantStatus(t, c.get(s.URL(), "", "/projects"), 200)
		}
		e := c.get(s.URL(), "", "/projects/any-project")
		wantStatus(t, e, 429)
		e.generalError(t)
		if ra := e.Header.Get("Retry-After"); ra != "" {
			t.Errorf("Retry-After %q; Neon may send none and the emulator must not help", ra)
		}
		if total, limited := s.Stats(); total != 4 || limited != 1 {
			t.Errorf("stats %d, %d", total, limited)
		}
	})
	t.Run("per route", func(t *testing.T) {
		s := New(Config{PerRouteRPS: 2})
		defer s.Close()
		c := newConformance(t, s)
		s.AddProject(Project{ID: "p-1"})
		wantStatus(t, c.get(s.URL(), "", "/projects"), 200)
		wantStatus(t, c.get(s.URL(), "", "/projects"), 200)
		wantStatus(t, c.get(s.URL(), "", "/projects"), 429)
		// Another route has its own budget.
		wantStatus(t, c.get(s.URL(), "", "/projects/p-1"), 200)
		time.Sleep(1100 * time.Millisecond)
		wantStatus(t, c.get(s.URL(), "", "/projects"), 200)
	})
}

// TestSpecMode checks that Config.Spec flags a request the real API would
// refuse, and passes conforming ones.
func TestSpecMode(t *testing.T) {
	s := New(Config{Spec: loadSpec(t)})
	defer s.Close()
	addProjects(s, 3)
	get := func(q string) int {
		resp, err := http.Get(s.URL() + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get("/projects?limit=400")
	get("/projects/tenant-001/connection_uri?database_name=neondb&role_name=neondb_owner&pooled=false")
	get("/projects/tenant-001/branches?search=main")
	s.FailNext(1, 503)
	get("/projects")
	if v := s.SpecViolations(); len(v) != 0 {
		t.Fatalf("conforming exchanges flagged: %v", v)
	}
	get("/projects?limit=500")
	get("/projects/tenant-001/connection_uri?database_name=neondb")
	v := s.SpecViolations()
	if len(v) != 2 || v[0].Kind != "request" || v[1].Kind != "request" {
		t.Fatalf("want two request violations, got %v", v)
	}
}

func TestRequestsAndConcurrency(t *testing.T) {
	s := New(Config{Latency: 5 * time.Millisecond})
	defer s.Close()
	addProjects(s, 20)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			resp, err := http.Get(fmt.Sprintf("%s/projects/tenant-%03d/connection_uri?database_name=neondb&role_name=neondb_owner&pooled=false", s.URL(), i%20))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	reqs := s.Requests()
	if len(reqs) != 50 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	r := reqs[0]
	if r.Route != "GET /projects/{project_id}/connection_uri" || r.Query.Get("pooled") != "false" || r.Status != 200 || r.Time.IsZero() || !strings.HasPrefix(r.Path, PathPrefix+"/projects/") {
		t.Errorf("record %+v", r)
	}
}

func TestFindSpec(t *testing.T) {
	t.Setenv(SpecEnv, "")
	// The walk up finds the nearest shared/ above the start, wherever the
	// checkout is (a CI clone may have one beside it, so "nothing found"
	// cannot be asserted from a temp dir).
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	want := filepath.Join(root, "a", specRelPath)
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := FindSpec(deep); err != nil || got != want {
		t.Errorf("FindSpec(%s) = %q, %v; want %q", deep, got, err, want)
	}
	t.Setenv(SpecEnv, "/nonexistent/neon-openapi.json")
	if _, err := FindSpec("."); err == nil {
		t.Error("accepted a missing $" + SpecEnv)
	}
}
