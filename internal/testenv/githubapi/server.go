// Package githubapi is an in-process emulator of the GitHub REST endpoints
// pgfleet's internal/github client uses, for tests and the demo.
//
// GitHub's hosted API cannot run here, so this stands in for it, following
// GitHub's documented request and response shapes and status codes: 201
// for a created and 204 for an updated secret, 204 for a delete, 404 for
// anything missing, 422 with GitHub's error JSON for an invalid name, a
// value over 48 KB or a target that is full (100 secrets per repository and
// per environment, 1,000 per organization). Lists page with per_page and
// page, GitHub's defaults and maxima, and Link headers.
//
// Each repository, environment and organization has its own curve25519
// key pair, so a test can decrypt every stored secret (Secret) and compare
// it with what it expected. Every request is recorded (Requests, Writes);
// writes can be answered with rate limits on demand (RateLimitWrites) or
// whenever they exceed GitHub's secondary limits (Config.EnforceWriteLimits).
//
// Served routes; {base} is /repos/{owner}/{repo}/actions,
// /repos/{owner}/{repo}/environments/{environment_name} or /orgs/{org}/actions:
//
//	GET                {base}/secrets/public-key
//	GET                {base}/secrets
//	GET, PUT, DELETE   {base}/secrets/{secret_name}
//	GET, POST          {base}/variables
//	GET, PATCH, DELETE {base}/variables/{name}
//	GET                /repos/{owner}/{repo}
//	GET                /repos/{owner}/{repo}/actions/organization-secrets
//	GET                /repos/{owner}/{repo}/environments
//	GET, PUT, DELETE   /repos/{owner}/{repo}/environments/{environment_name}
//
// The older /repositories/{id}/environments/… routes are deliberately not
// served: a client must use the documented ones.
package githubapi

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/nacl/box"
)

// GitHub's limits, as the emulator enforces them.
const (
	MaxRepositorySecrets     = 100
	MaxEnvironmentSecrets    = 100
	MaxOrganizationSecrets   = 1000
	MaxRepositoryVariables   = 500
	MaxEnvironmentVariables  = 100
	MaxOrganizationVariables = 1000
	// MaxEncryptedSize bounds a secret's encrypted_value as sent (base64):
	// GitHub's 48 KB.
	MaxEncryptedSize = 48 << 10
	// MaxVariableSize bounds a variable's value: 48 KB.
	MaxVariableSize          = 48 << 10
	MaxEnvironmentNameLength = 255

	WritesPerMinute = 80  // GitHub's secondary limit on content-creating requests
	WritesPerHour   = 500 // likewise, per hour
)

// SecondaryRateLimitMessage is how GitHub words a secondary rate limit.
const SecondaryRateLimitMessage = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID %s."

// Documentation URLs GitHub puts in its error answers.
const (
	docsREST      = "https://docs.github.com/rest"
	docsSecondary = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
	docsPrimary   = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits"
	docsSecrets   = "https://docs.github.com/rest/actions/secrets"
	docsVariables = "https://docs.github.com/rest/actions/variables"
	docsEnvs      = "https://docs.github.com/rest/deployments/environments"
)

// Config says how the emulator behaves. The zero value accepts any token
// and answers at once.
type Config struct {
	// Token, when set, is the only token accepted (as "Bearer <token>" or
	// "token <token>"); any other request answers 401 "Bad credentials".
	// When empty, any Authorization header is accepted, and a request
	// without one answers 401 "Requires authentication".
	Token string
	// Now is the emulator's clock: timestamps, recorded request times,
	// x-ratelimit-reset and the write limits use it. Default time.Now.
	Now func() time.Time
	// EnforceWriteLimits answers a write 403 with retry-after when it would
	// be more than WritesPerMinute in a sliding minute or WritesPerHour in a
	// sliding hour (by Now), as GitHub's secondary rate limits do.
	EnforceWriteLimits bool
	// MinWriteInterval, when set, answers a write 403 with retry-after
	// RetryAfter (default 1 s) when it comes less than MinWriteInterval
	// after the last write let through (by Now, not rounded): GitHub's
	// secondary limit as it bites an integration writing faster than
	// about once a second.
	MinWriteInterval time.Duration
	RetryAfter       time.Duration
	// Latency is added (in real time) to every answer, so that concurrent
	// writes would overlap and show in MaxConcurrentWrites.
	Latency time.Duration
}

// Target names where secrets and variables live, for the test helpers.
type Target struct {
	Owner, Repo string // a repository, or with Environment one of its environments
	Environment string
	Org         string // an organization (Owner and Repo empty)
}

// Repo is the repository owner/repo.
func Repo(owner, repo string) Target { return Target{Owner: owner, Repo: repo} }

// Env is the environment env of owner/repo.
func Env(owner, repo, env string) Target { return Target{Owner: owner, Repo: repo, Environment: env} }

// Org is the organization org.
func Org(org string) Target { return Target{Org: org} }

func (t Target) String() string {
	switch {
	case t.Org != "":
		return "organization " + t.Org
	case t.Environment != "":
		return fmt.Sprintf("environment %q of %s/%s", t.Environment, t.Owner, t.Repo)
	}
	return "repository " + t.Owner + "/" + t.Repo
}

// Request is one request the emulator answered.
type Request struct {
	Method string
	Path   string // unescaped, e.g. /repos/o/r/environments/tenant-a/secrets/DATABASE_URL
	Query  string // raw query, e.g. per_page=100&page=2
	Time   time.Time
	Status int
}

// IsWrite reports whether the request was a PUT, POST, PATCH or DELETE.
func (r Request) IsWrite() bool { return isWrite(r.Method) }

// StoredSecret is a secret as the emulator holds it, value decrypted.
type StoredSecret struct {
	Name                  string
	Value                 string
	CreatedAt, UpdatedAt  time.Time
	Visibility            string  // organization secrets only
	SelectedRepositoryIDs []int64 // organization secrets with visibility "selected"
}

// StoredVariable is a variable as the emulator holds it.
type StoredVariable struct {
	Name, Value           string
	CreatedAt, UpdatedAt  time.Time
	Visibility            string
	SelectedRepositoryIDs []int64
}

// RateLimit is the answer RateLimitWrites gives.
type RateLimit struct {
	// Status is 403 (GitHub's usual answer; the default) or 429.
	Status int
	// Wait is how long the client is told to wait, in whole seconds
	// (default 1 s).
	Wait time.Duration
	// Reset sends x-ratelimit-remaining: 0 and x-ratelimit-reset (now +
	// Wait, in epoch seconds) instead of retry-after, as the primary rate
	// limit does.
	Reset bool
}

// Server is a running emulator. It is safe for concurrent use.
type Server struct {
	cfg  Config
	http *httptest.Server
	mux  *http.ServeMux

	mu          sync.Mutex
	repos       map[string]*repository   // by lower-cased "owner/name"
	orgs        map[string]*organization // by lower-cased login
	nextID      int64
	requests    []*Request
	limits      []RateLimit // answers for the next writes
	writeTimes  []time.Time // admitted writes, for EnforceWriteLimits
	lastWrite   time.Time   // the last admitted write, for MinWriteInterval
	inflight    int         // writes being answered now
	maxInflight int
	comments    map[string][]*issueComment // by lower-cased "owner/name#number" (comments.go)
}

// scope is one holder of secrets and variables.
type scope struct {
	what       string // "repository", "environment", "organization"
	keys       map[string]*keyPair
	keyID      string
	secrets    map[string]*secret // by upper-cased name
	vars       map[string]*variable
	maxSecrets int
	maxVars    int
}

type keyPair struct {
	pub, priv *[32]byte
}

type secret struct {
	name                 string
	keyID                string
	encrypted            []byte // the sealed box
	plain                string // set instead of encrypted by SetSecret
	createdAt, updatedAt time.Time
	visibility           string
	selected             []int64
}

type variable struct {
	name, value          string
	createdAt, updatedAt time.Time
	visibility           string
	selected             []int64
}

type repository struct {
	id          int64
	owner, name string
	createdAt   time.Time
	actions     *scope
	envs        map[string]*environment // by lower-cased name
}

type environment struct {
	id                   int64
	name                 string
	createdAt, updatedAt time.Time
	scope                *scope
}

type organization struct {
	id    int64
	login string
	scope *scope
}

// Start starts an emulator on a free port of 127.0.0.1.
func Start(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:    cfg,
		repos:  map[string]*repository{},
		orgs:   map[string]*organization{},
		nextID: 1000,
	}
	s.mux = s.routes()
	s.http = httptest.NewServer(s)
	return s
}

// URL is the API root with a trailing slash: what a client uses as its
// base URL (github-api-url).
func (s *Server) URL() string { return s.http.URL + "/" }

// Close stops the server and drops open connections.
func (s *Server) Close() { s.http.Close() }

func (s *Server) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Second) }

func (s *Server) newID() int64 {
	s.nextID++
	return s.nextID
}

func (s *Server) newScope(what string, maxSecrets, maxVars int) *scope {
	sc := &scope{what: what, keys: map[string]*keyPair{}, secrets: map[string]*secret{}, vars: map[string]*variable{}, maxSecrets: maxSecrets, maxVars: maxVars}
	s.rotate(sc)
	return sc
}

// rotate gives sc a new key pair; secrets stored under older keys stay
// readable.
func (s *Server) rotate(sc *scope) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	id := fmt.Sprintf("%d", 568250167242549000+s.newID())
	sc.keys[id] = &keyPair{pub: pub, priv: priv}
	sc.keyID = id
}

// AddRepository adds the repository owner/name (if new) and returns its id.
func (s *Server) AddRepository(owner, name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addRepository(owner, name).id
}

func (s *Server) addRepository(owner, name string) *repository {
	key := strings.ToLower(owner + "/" + name)
	if r, ok := s.repos[key]; ok {
		return r
	}
	r := &repository{id: s.newID(), owner: owner, name: name, createdAt: s.now(),
		actions: s.newScope("repository", MaxRepositorySecrets, MaxRepositoryVariables),
		envs:    map[string]*environment{}}
	s.repos[key] = r
	return r
}

// AddOrganization adds the organization org (if new).
func (s *Server) AddOrganization(org string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(org)
	if _, ok := s.orgs[key]; !ok {
		s.orgs[key] = &organization{id: s.newID(), login: org, scope: s.newScope("organization", MaxOrganizationSecrets, MaxOrganizationVariables)}
	}
}

// AddEnvironment adds the environment env to owner/repo (adding the
// repository too if new), as if made by hand.
func (s *Server) AddEnvironment(owner, repo, env string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addEnvironment(s.addRepository(owner, repo), env)
}

func (s *Server) addEnvironment(r *repository, name string) (*environment, bool) {
	if e, ok := r.envs[strings.ToLower(name)]; ok {
		return e, false
	}
	now := s.now()
	e := &environment{id: s.newID(), name: name, createdAt: now, updatedAt: now,
		scope: s.newScope("environment", MaxEnvironmentSecrets, MaxEnvironmentVariables)}
	r.envs[strings.ToLower(name)] = e
	return e, true
}

// Environments lists the environment names of owner/repo, sorted.
func (s *Server) Environments(owner, repo string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[strings.ToLower(owner+"/"+repo)]
	if r == nil {
		return nil
	}
	var names []string
	for _, e := range r.envs {
		names = append(names, e.name)
	}
	sort.Strings(names)
	return names
}

// scopeOf finds t's scope; p.mu is held. It panics on an unknown target: a
// test that asks about one has a bug.
func (s *Server) scopeOf(t Target) *scope {
	if t.Org != "" {
		o := s.orgs[strings.ToLower(t.Org)]
		if o == nil {
			panic("githubapi: unknown " + t.String())
		}
		return o.scope
	}
	r := s.repos[strings.ToLower(t.Owner+"/"+t.Repo)]
	if r == nil {
		panic("githubapi: unknown " + t.String())
	}
	if t.Environment == "" {
		return r.actions
	}
	e := r.envs[strings.ToLower(t.Environment)]
	if e == nil {
		panic("githubapi: unknown " + t.String())
	}
	return e.scope
}

// Secret returns the decrypted value and the updated_at of the secret name
// in t, and whether it exists.
func (s *Server) Secret(t Target, name string) (value string, updatedAt time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.scopeOf(t).secrets[strings.ToUpper(name)]
	if sec == nil {
		return "", time.Time{}, false
	}
	return s.scopeOf(t).open(sec), sec.updatedAt, true
}

// Secrets returns every secret of t, sorted by name, values decrypted.
func (s *Server) Secrets(t Target) []StoredSecret {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeOf(t)
	var out []StoredSecret
	for _, sec := range byName(sc.secrets) {
		out = append(out, StoredSecret{Name: sec.name, Value: sc.open(sec), CreatedAt: sec.createdAt, UpdatedAt: sec.updatedAt,
			Visibility: sec.visibility, SelectedRepositoryIDs: append([]int64(nil), sec.selected...)})
	}
	return out
}

// open decrypts a stored secret. A value the emulator cannot open was
// refused when it was written, so failing here is the emulator's bug.
func (sc *scope) open(sec *secret) string {
	if sec.encrypted == nil {
		return sec.plain
	}
	k := sc.keys[sec.keyID]
	plain, ok := box.OpenAnonymous(nil, sec.encrypted, k.pub, k.priv)
	if !ok {
		panic("githubapi: a stored secret does not decrypt")
	}
	return string(plain)
}

// SetSecret creates or changes the secret name in t as if by hand in
// GitHub's settings: value becomes its value and updatedAt its updated_at
// (now if zero). An organization secret gets visibility "private".
func (s *Server) SetSecret(t Target, name, value string, updatedAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeOf(t)
	if updatedAt.IsZero() {
		updatedAt = s.now()
	}
	key := strings.ToUpper(name)
	sec := sc.secrets[key]
	if sec == nil {
		sec = &secret{name: key, createdAt: updatedAt}
		if t.Org != "" {
			sec.visibility = "private"
		}
		sc.secrets[key] = sec
	}
	sec.encrypted, sec.keyID, sec.plain = nil, "", value
	sec.updatedAt = updatedAt.UTC()
}

// DeleteSecret deletes the secret name of t as if by hand, and reports
// whether it existed.
func (s *Server) DeleteSecret(t Target, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return removeNamed(s.scopeOf(t).secrets, name)
}

// Variable returns the value of the variable name in t, and whether it
// exists.
func (s *Server) Variable(t Target, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.scopeOf(t).vars[strings.ToUpper(name)]
	if v == nil {
		return "", false
	}
	return v.value, true
}

// Variables returns every variable of t, sorted by name.
func (s *Server) Variables(t Target) []StoredVariable {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []StoredVariable
	for _, v := range byName(s.scopeOf(t).vars) {
		out = append(out, StoredVariable{Name: v.name, Value: v.value, CreatedAt: v.createdAt, UpdatedAt: v.updatedAt,
			Visibility: v.visibility, SelectedRepositoryIDs: append([]int64(nil), v.selected...)})
	}
	return out
}

// SetVariable creates or changes the variable name in t as if by hand.
func (s *Server) SetVariable(t Target, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeOf(t)
	key := strings.ToUpper(name)
	now := s.now()
	v := sc.vars[key]
	if v == nil {
		v = &variable{name: key, createdAt: now}
		if t.Org != "" {
			v.visibility = "private"
		}
		sc.vars[key] = v
	}
	v.value, v.updatedAt = value, now
}

// DeleteVariable deletes the variable name of t as if by hand, and reports
// whether it existed.
func (s *Server) DeleteVariable(t Target, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return removeNamed(s.scopeOf(t).vars, name)
}

// PublicKey returns t's current key id and public key, base64 as GitHub
// serves it.
func (s *Server) PublicKey(t Target) (keyID, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeOf(t)
	return sc.keyID, base64.StdEncoding.EncodeToString(sc.keys[sc.keyID].pub[:])
}

// RotateKey gives t a new key pair, as GitHub may: a write sealed with the
// old key_id is then refused with 422.
func (s *Server) RotateKey(t Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate(s.scopeOf(t))
}

// Requests returns every request answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
	}
	return out
}

// Writes returns the PUT, POST, PATCH and DELETE requests answered so far,
// in order, rate-limited ones included.
func (s *Server) Writes() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.IsWrite() {
			out = append(out, *r)
		}
	}
	return out
}

// ResetRequests forgets the requests recorded so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.maxInflight = 0
}

// MaxConcurrentWrites is the most writes that were being answered at the
// same time (GitHub asks for one at a time). Set Config.Latency to make
// overlaps likely to show.
func (s *Server) MaxConcurrentWrites() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInflight
}

// RateLimitWrites answers the next n writes (after authentication) with l
// instead of doing them.
func (s *Server) RateLimitWrites(n int, l RateLimit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.limits = append(s.limits, l)
	}
}

// A scope's secrets and variables are kept by their upper-cased name
// (GitHub's names are case-insensitive), which is also the name they have.

// byName lists a scope's secrets or variables sorted by name.
func byName[T any](m map[string]*T) []*T {
	out := make([]*T, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// removeNamed deletes the secret or variable name from m and reports
// whether it was there.
func removeNamed[T any](m map[string]*T, name string) bool {
	key := strings.ToUpper(name)
	_, ok := m[key]
	delete(m, key)
	return ok
}

func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}
