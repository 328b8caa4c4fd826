// Package neonapi is an in-process emulator of the parts of the Neon API v2
// that pgfleet uses, for tests and the demo.
//
// Neon's hosted API cannot run here, so this stands in for it. It follows the
// OpenAPI spec (neon-openapi.json) for the endpoints it serves and imitates
// the behaviour that the spec leaves out but a client must cope with: a
// cursor on every page of GET /projects (including the last), the 400
// "org_id is required" answer to personal keys, 429s without Retry-After, and
// 423/503 answers that are safe to retry. When Config.Spec is set, every
// request and response is also checked against the spec, so client tests
// catch a client that sends what the real API would reject.
//
// Served routes (under the prefix /api/v2):
//
//	GET /projects
//	GET /projects/{project_id}
//	GET /projects/{project_id}/branches
//	GET /projects/{project_id}/connection_uri
//	POST /projects/{project_id}/branches
//	DELETE /projects/{project_id}/branches/{branch_id}
//	GET /projects/{project_id}/operations/{operation_id}
package neonapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// PathPrefix is where the API is served, as on console.neon.tech.
const PathPrefix = "/api/v2"

// OrgIDRequiredMessage is what Neon answers (400) to GET /projects from a
// personal API key that belongs to several organizations when no org_id is
// given. The spec does not document it; this wording is the one Neon's own
// CLI (neonctl) recognises, by the substring "org_id is required".
const OrgIDRequiredMessage = "org_id is required, you can find it on your organization settings page"

// Messages for the failures FailNext injects, modelled on Neon's wording.
const (
	lockedMessage      = "project already has running operations, scheduling of new ones is prohibited"
	unavailableMessage = "service is temporarily unavailable, please try again later"
	rateLimitMessage   = "rate limit exceeded, please retry later"
	authFailedMessage  = "authentication failed: the API key is not valid"
)

// Config says how the emulator behaves. The zero value serves without
// authentication, org requirement, rate limits or latency.
type Config struct {
	// APIKey, when set, is the only bearer token accepted; any other request
	// answers 401 with a GeneralError body.
	APIKey string

	// RequireOrgID imitates a personal API key in several organizations:
	// GET /projects without org_id answers 400 with OrgIDRequiredMessage,
	// and with another org_id answers an empty list.
	RequireOrgID string

	// RequestsPerMinute is the account-wide limit over any sliding 60 s
	// window (Neon: 700); 0 means unlimited. Requests over it answer 429
	// with a GeneralError body and no Retry-After header, as Neon may.
	RequestsPerMinute int

	// PerRouteRPS is the limit per route (method + path template) over any
	// sliding 1 s window (Neon: 40); 0 means unlimited.
	PerRouteRPS float64

	// Latency is added to every response, to make concurrency visible.
	Latency time.Duration

	// Addr is the listen address; default "127.0.0.1:0" (a free port).
	Addr string

	// Spec, when set, is used to validate every request the emulator
	// receives and every response it sends; see SpecViolations. Load it
	// with LoadSpec.
	Spec *openapi3.T

	// Branching says how branch creation and deletion behave (see
	// branches.go).
	Branching BranchConfig
}

// Project is one Neon project as the emulator knows it.
type Project struct {
	ID    string // default: generated, like "quiet-field-12345678"
	Name  string // default: ID
	OrgID string // "" for a personal project

	RegionID  string // default "aws-us-east-2"
	PgVersion int    // default 17

	// Branches of the project. Default: one default branch "main" with a
	// generated "br-..." id. If none is marked Default, the first one is.
	Branches []Branch

	// Databases of the default branch, keyed by Neon database_name (for
	// example "neondb").
	Databases map[string]Database

	// Unavailable makes GET /projects list this project's id under
	// unavailable_project_ids instead of in projects, as Neon does for
	// projects whose details it could not fetch in time. GET
	// /projects/{project_id} still answers.
	Unavailable bool

	// SyntheticStorageSize is the project's synthetic_storage_size in
	// bytes; default 31 MiB.
	SyntheticStorageSize int64
}

// Branch is one branch of a project.
type Branch struct {
	ID      string // default: generated "br-..."
	Name    string
	Default bool
	// Databases of this branch, keyed by database_name. For the default
	// branch these are merged with Project.Databases.
	Databases map[string]Database
}

// Database is what GET /projects/{id}/connection_uri hands back for one
// (branch, database_name, role_name). The emulator never talks to Postgres.
type Database struct {
	// URI is returned as is for pooled=false. For pooled=true the host's
	// first label gets "-pooler" appended, as Neon does.
	URI string
	// Role is the role_name this URI answers for; default: the user in URI.
	// Any other role_name answers 404.
	Role string
}

// RequestRecord is one request the emulator answered.
type RequestRecord struct {
	Method string
	Path   string // as received, including PathPrefix
	Route  string // method and path template, e.g. "GET /projects/{project_id}/connection_uri"; "" when unrouted
	Query  url.Values
	Status int
	Time   time.Time // when the request arrived
}

// Server is a running emulator. It is safe for concurrent use.
type Server struct {
	cfg  Config
	http *http.Server
	url  string
	spec *specChecker // nil without Config.Spec

	mu          sync.Mutex
	projects    []*project // in creation order: the order GET /projects lists
	byID        map[string]*project
	failNext    []int // statuses to answer next, one per request
	requests    []RequestRecord
	accountHits []time.Time            // admitted requests, last minute
	routeHits   map[string][]time.Time // admitted requests per route, last second
	total       int
	rateLimited int
	violations  []SpecViolation
	seq         int
}

type project struct {
	Project
	createdAt  time.Time
	branches   []*branch
	operations []*operation
}

type branch struct {
	Branch
	createdAt  time.Time
	parentID   string // set for branches created through the API
	expiresAt  string
	endpointID string
	created    bool // made by POST /projects/{id}/branches
}

// New starts an emulator listening on cfg.Addr (default a free port on
// 127.0.0.1). It panics if it cannot listen or if cfg.Spec cannot be routed,
// as httptest.NewServer does: both are test-setup bugs.
func New(cfg Config) *Server {
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic(fmt.Sprintf("neonapi: listen on %s: %v", addr, err))
	}
	s := &Server{
		cfg:       cfg,
		url:       "http://" + ln.Addr().String() + PathPrefix,
		byID:      map[string]*project{},
		routeHits: map[string][]time.Time{},
	}
	if cfg.Spec != nil {
		s.spec, err = newSpecChecker(cfg.Spec)
		if err != nil {
			ln.Close()
			panic(fmt.Sprintf("neonapi: %v", err))
		}
	}
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return s
}

// URL is the API base URL, including PathPrefix: what a client uses as its
// BaseURL.
func (s *Server) URL() string { return s.url }

// Close stops the server and drops open connections.
func (s *Server) Close() { s.http.Close() }

// AddNumberedProjects adds n projects for tests that list many and connect
// to none: ids tenant-0000 on, names "Tenant 0" on, each with a neondb
// database at a Neon-shaped connection string (host ep-t<i>, which does not
// exist) whose password is password(i).
func (s *Server) AddNumberedProjects(n int, password func(i int) string) {
	for i := range n {
		s.AddProject(Project{
			ID:   fmt.Sprintf("tenant-%04d", i),
			Name: fmt.Sprintf("Tenant %d", i),
			Databases: map[string]Database{
				"neondb": {URI: fmt.Sprintf("postgresql://neondb_owner:%s@ep-t%d.us-east-2.aws.neon.tech/neondb?sslmode=require", password(i), i)},
			},
		})
	}
}

// AddProject adds a project (or replaces the one with the same ID) and
// returns it with its defaults filled in, so a test can learn generated ids.
// It panics on an ID the spec would reject.
func (s *Server) AddProject(p Project) Project {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if p.ID == "" {
		p.ID = fmt.Sprintf("%s-%08d", words[s.seq%len(words)], s.seq)
	}
	if !idPattern.MatchString(p.ID) {
		panic(fmt.Sprintf("neonapi: project id %q does not match %s", p.ID, idPattern))
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	if p.RegionID == "" {
		p.RegionID = "aws-us-east-2"
	}
	if p.PgVersion == 0 {
		p.PgVersion = 17
	}
	if len(p.Branches) == 0 {
		p.Branches = []Branch{{Name: "main", Default: true}}
	}
	created := baseTime.Add(time.Duration(s.seq) * time.Minute)
	pr := &project{Project: p, createdAt: created}
	hasDefault := false
	for _, b := range p.Branches {
		hasDefault = hasDefault || b.Default
	}
	pr.Branches = nil
	for i, b := range p.Branches {
		if b.ID == "" {
			b.ID = fmt.Sprintf("br-%s-%08d", words[(s.seq+i+3)%len(words)], s.seq*100+i)
		}
		if !idPattern.MatchString(b.ID) {
			panic(fmt.Sprintf("neonapi: branch id %q does not match %s", b.ID, idPattern))
		}
		if !hasDefault && i == 0 {
			b.Default = true
		}
		dbs := map[string]Database{}
		for k, v := range b.Databases {
			dbs[k] = v
		}
		if b.Default {
			for k, v := range p.Databases {
				dbs[k] = v
			}
		}
		b.Databases = dbs
		pr.Branches = append(pr.Branches, b)
		pr.branches = append(pr.branches, &branch{Branch: b, createdAt: created.Add(time.Duration(i) * time.Second)})
	}
	if old, ok := s.byID[p.ID]; ok {
		for i, q := range s.projects {
			if q == old {
				s.projects[i] = pr
			}
		}
	} else {
		s.projects = append(s.projects, pr)
	}
	s.byID[p.ID] = pr
	return pr.Project
}

// FailNext makes the next n requests (after authentication) answer status
// with a GeneralError body, e.g. 503 or 423 to exercise a client's retries.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, status)
	}
}

// Requests returns a copy of every request answered so far, in order.
func (s *Server) Requests() []RequestRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RequestRecord(nil), s.requests...)
}

// Stats returns how many requests were answered and how many of those were
// 429 because of the emulated rate limits.
func (s *Server) Stats() (total, rateLimited int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.rateLimited
}

// SpecViolations returns every request or response that did not conform to
// Config.Spec (always nil without it).
func (s *Server) SpecViolations() []SpecViolation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SpecViolation(nil), s.violations...)
}

var (
	// idPattern is the spec's pattern for project, branch and org ids.
	idPattern = regexp.MustCompile(`^[a-z0-9-]{1,60}$`)
	baseTime  = time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	words     = []string{"quiet", "shiny", "winter", "spring", "aged", "sweet", "raspy", "calm", "bold", "misty"}
)

// generalError is the spec's GeneralError.
type generalError struct {
	RequestID string `json:"request_id,omitempty"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

// recorder buffers a response so that it can be checked against the spec and
// recorded before the client sees it: a test that asserts on Requests() or
// SpecViolations() right after its call returns then sees this request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// ServeHTTP answers one request: authentication, rate limits, injected
// failures, then the route itself.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	arrived := time.Now()
	requestID := req.Header.Get("X-Request-ID")
	if requestID == "" {
		requestID = newRequestID()
	}
	rec := &recorder{header: http.Header{}}
	rec.header.Set("X-Request-Id", requestID)

	// The body is read once, for the handler and for the spec check.
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	route, params := match(req.Method, req.URL.Path)
	limited := s.serve(rec, req, body, route, params, requestID, arrived)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}

	if s.cfg.Latency > 0 {
		t := time.NewTimer(s.cfg.Latency)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
		}
	}

	var violations []SpecViolation
	if s.spec != nil {
		violations = s.spec.check(req, body, rec.status, rec.header, rec.body.Bytes())
	}
	s.mu.Lock()
	s.total++
	if limited {
		s.rateLimited++
	}
	s.requests = append(s.requests, RequestRecord{
		Method: req.Method,
		Path:   req.URL.Path,
		Route:  route,
		Query:  req.URL.Query(),
		Status: rec.status,
		Time:   arrived,
	})
	s.violations = append(s.violations, violations...)
	s.mu.Unlock()

	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body.Bytes()) //nolint:errcheck // the client may have gone
}

// serve writes the answer to req into w; it reports whether the request was
// refused by the emulated rate limits (as opposed to an injected 429).
func (s *Server) serve(w *recorder, req *http.Request, body []byte, route string, params map[string]string, requestID string, now time.Time) (rateLimited bool) {
	if s.cfg.APIKey != "" && req.Header.Get("Authorization") != "Bearer "+s.cfg.APIKey {
		writeError(w, http.StatusUnauthorized, authFailedMessage, requestID)
		return false
	}
	if route == "" {
		writeError(w, http.StatusNotFound, "not found", requestID)
		return false
	}
	if !s.admit(route, now) {
		// Neon may send 429 without Retry-After; so does the emulator.
		writeError(w, http.StatusTooManyRequests, rateLimitMessage, requestID)
		return true
	}
	if status := s.takeFailure(); status != 0 {
		msg := http.StatusText(status)
		switch status {
		case http.StatusLocked:
			msg = lockedMessage
		case http.StatusServiceUnavailable:
			msg = unavailableMessage
		case http.StatusTooManyRequests:
			msg = rateLimitMessage
		}
		writeError(w, status, msg, requestID)
		return false
	}
	q := req.URL.Query()
	switch route {
	case routeListProjects:
		s.listProjects(w, q, requestID)
	case routeGetProject:
		s.getProject(w, params["project_id"], requestID)
	case routeListBranches:
		s.listBranches(w, params["project_id"], q, requestID)
	case routeConnectionURI:
		s.connectionURI(w, params["project_id"], q, requestID)
	case routeCreateBranch:
		s.createBranch(w, req, params["project_id"], body, requestID)
	case routeDeleteBranch:
		s.deleteBranch(w, req, params["project_id"], params["branch_id"], requestID)
	case routeGetOperation:
		s.getOperation(w, params["project_id"], params["operation_id"], requestID)
	}
	return false
}

// admit applies the account and per-route sliding windows; it counts only
// admitted requests, so a client that backs off gets through again.
func (s *Server) admit(route string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.RequestsPerMinute > 0 {
		s.accountHits = dropBefore(s.accountHits, now.Add(-time.Minute))
		if len(s.accountHits) >= s.cfg.RequestsPerMinute {
			return false
		}
	}
	if s.cfg.PerRouteRPS > 0 {
		hits := dropBefore(s.routeHits[route], now.Add(-time.Second))
		s.routeHits[route] = hits
		if float64(len(hits)) >= s.cfg.PerRouteRPS {
			return false
		}
	}
	if s.cfg.RequestsPerMinute > 0 {
		s.accountHits = append(s.accountHits, now)
	}
	if s.cfg.PerRouteRPS > 0 {
		s.routeHits[route] = append(s.routeHits[route], now)
	}
	return true
}

func dropBefore(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cutoff) {
		i++
	}
	return ts[i:]
}

func (s *Server) takeFailure() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failNext) == 0 {
		return 0
	}
	status := s.failNext[0]
	s.failNext = s.failNext[1:]
	return status
}

const (
	routeListProjects  = "GET /projects"
	routeGetProject    = "GET /projects/{project_id}"
	routeListBranches  = "GET /projects/{project_id}/branches"
	routeConnectionURI = "GET /projects/{project_id}/connection_uri"
)

// match maps a request to one of the served routes, or "".
func match(method, path string) (string, map[string]string) {
	if method != http.MethodGet {
		return matchBranchChange(method, path)
	}
	rest, ok := strings.CutPrefix(path, PathPrefix)
	if !ok {
		return "", nil
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if len(parts) == 0 || parts[0] != "projects" {
		return "", nil
	}
	switch len(parts) {
	case 1:
		return routeListProjects, nil
	case 2:
		return routeGetProject, map[string]string{"project_id": parts[1]}
	case 3:
		switch parts[2] {
		case "branches":
			return routeListBranches, map[string]string{"project_id": parts[1]}
		case "connection_uri":
			return routeConnectionURI, map[string]string{"project_id": parts[1]}
		}
	case 4:
		if parts[2] == "operations" {
			return routeGetOperation, map[string]string{"project_id": parts[1], "operation_id": parts[3]}
		}
	}
	return "", nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // writes to a buffer
}

func writeError(w http.ResponseWriter, status int, message, requestID string) {
	writeJSON(w, status, generalError{RequestID: requestID, Code: "", Message: message})
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
