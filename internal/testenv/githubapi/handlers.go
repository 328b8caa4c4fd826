package githubapi

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/nacl/box"
)

// apiError is GitHub's error body.
type apiError struct {
	Message          string       `json:"message"`
	Errors           []fieldError `json:"errors,omitempty"`
	DocumentationURL string       `json:"documentation_url"`
	Status           string       `json:"status"` // GitHub repeats the HTTP status as a string

	status int         // the HTTP status
	header http.Header // extra headers, e.g. retry-after
}

// fieldError is one entry of a 422's errors.
type fieldError struct {
	Resource string `json:"resource"`
	Field    string `json:"field,omitempty"`
	Code     string `json:"code"`
	Message  string `json:"message,omitempty"`
}

func notFound() *apiError {
	return &apiError{status: http.StatusNotFound, Message: "Not Found", DocumentationURL: docsREST}
}

func invalid(resource, field, code, message, docs string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, Message: "Validation Failed", DocumentationURL: docs,
		Errors: []fieldError{{Resource: resource, Field: field, Code: code, Message: message}}}
}

// statusWriter records the status of an answer as soon as it is known,
// before the client can see it, so that a test never finds a request it
// has an answer to missing from Requests.
type statusWriter struct {
	http.ResponseWriter
	s     *Server
	rec   *Request
	write bool
	done  bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.done {
		w.done = true
		w.s.mu.Lock()
		w.rec.Status = status
		if w.write {
			w.s.inflight--
		}
		w.s.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP answers one request: authentication, injected and enforced
// rate limits, then the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	write := isWrite(r.Method)
	s.mu.Lock()
	now := s.cfg.Now()
	rec := &Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Time: now}
	s.requests = append(s.requests, rec)
	if write {
		s.inflight++
		s.maxInflight = max(s.maxInflight, s.inflight)
	}
	s.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w, s: s, rec: rec, write: write}
	defer func() {
		if !sw.done {
			sw.WriteHeader(http.StatusOK)
		}
	}()
	if s.cfg.Latency > 0 {
		time.Sleep(s.cfg.Latency)
	}
	sw.Header().Set("X-GitHub-Request-Id", requestID())
	sw.Header().Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	if e := s.authenticate(r); e != nil {
		writeError(sw, e)
		return
	}
	if write {
		if e := s.admitWrite(now, sw.Header().Get("X-GitHub-Request-Id")); e != nil {
			writeError(sw, e)
			return
		}
	}
	s.mux.ServeHTTP(sw, r)
}

func (s *Server) authenticate(r *http.Request) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return &apiError{status: http.StatusUnauthorized, Message: "Requires authentication", DocumentationURL: docsREST}
	}
	if s.cfg.Token == "" {
		return nil
	}
	scheme, token, _ := strings.Cut(h, " ")
	if (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "token")) && token == s.cfg.Token {
		return nil
	}
	return &apiError{status: http.StatusUnauthorized, Message: "Bad credentials", DocumentationURL: docsREST}
}

// admitWrite answers an injected rate limit, or one GitHub would give for
// too many writes; nil lets the write through.
func (s *Server) admitWrite(now time.Time, reqID string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.limits) > 0 {
		l := s.limits[0]
		s.limits = s.limits[1:]
		return rateLimitAnswer(l, now, reqID)
	}
	if iv := s.cfg.MinWriteInterval; iv > 0 {
		exact := s.cfg.Now()
		if !s.lastWrite.IsZero() && exact.Sub(s.lastWrite) < iv {
			return rateLimitAnswer(RateLimit{Status: http.StatusForbidden, Wait: s.cfg.RetryAfter}, now, reqID)
		}
		s.lastWrite = exact
	}
	if !s.cfg.EnforceWriteLimits {
		return nil
	}
	i := 0
	for i < len(s.writeTimes) && !s.writeTimes[i].After(now.Add(-time.Hour)) {
		i++
	}
	s.writeTimes = s.writeTimes[i:]
	var freeAt time.Time
	if n := len(s.writeTimes); n >= WritesPerHour {
		freeAt = s.writeTimes[n-WritesPerHour].Add(time.Hour)
	}
	inMinute := 0
	for _, t := range s.writeTimes {
		if t.After(now.Add(-time.Minute)) {
			inMinute++
		}
	}
	if inMinute >= WritesPerMinute {
		if t := s.writeTimes[len(s.writeTimes)-WritesPerMinute].Add(time.Minute); t.After(freeAt) {
			freeAt = t
		}
	}
	if !freeAt.IsZero() {
		return rateLimitAnswer(RateLimit{Status: http.StatusForbidden, Wait: freeAt.Sub(now)}, now, reqID)
	}
	s.writeTimes = append(s.writeTimes, now)
	return nil
}

func rateLimitAnswer(l RateLimit, now time.Time, reqID string) *apiError {
	status := l.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	secs := int64(math.Ceil(l.Wait.Seconds()))
	if secs <= 0 {
		secs = 1
	}
	e := &apiError{status: status, header: http.Header{}}
	if l.Reset {
		e.Message = "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID " + reqID + "."
		e.DocumentationURL = docsPrimary
		e.header.Set("X-RateLimit-Limit", "5000")
		e.header.Set("X-RateLimit-Remaining", "0")
		e.header.Set("X-RateLimit-Used", "5000")
		e.header.Set("X-RateLimit-Reset", strconv.FormatInt(now.Unix()+secs, 10))
		e.header.Set("X-RateLimit-Resource", "core")
		return e
	}
	e.Message = fmt.Sprintf(SecondaryRateLimitMessage, reqID)
	e.DocumentationURL = docsSecondary
	e.header.Set("Retry-After", strconv.FormatInt(secs, 10))
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	for k, vs := range e.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	e.Status = strconv.Itoa(e.status)
	writeJSON(w, e.status, e)
}

func requestID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:4]) + ":" + hex.EncodeToString(b[4:]))
}

// handler is a route's body: it runs with s.mu held and returns the status
// and body of its answer (nil body: none), or an error answer.
type handler func(r *http.Request, now time.Time) (int, any, *apiError)

func (s *Server) handle(mux *http.ServeMux, pattern string, h handler) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		status, body, e := h(r, s.now())
		s.mu.Unlock()
		switch {
		case e != nil:
			writeError(w, e)
		case body == nil:
			w.WriteHeader(status)
		default:
			writeJSON(w, status, body)
		}
	})
}

// lister is a route answering one page of a list, with GitHub's Link
// header.
type lister func(r *http.Request) (items []any, wrap func(total int, page []any) any, defaultPer, maxPer int, e *apiError)

func (s *Server) list(mux *http.ServeMux, pattern string, l lister) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		items, wrap, def, maxPer, e := l(r)
		s.mu.Unlock()
		if e != nil {
			writeError(w, e)
			return
		}
		per := intParam(r, "per_page", def)
		if per < 1 {
			per = def
		}
		per = min(per, maxPer)
		page := max(intParam(r, "page", 1), 1)
		last := max((len(items)+per-1)/per, 1)
		from := min((page-1)*per, len(items))
		to := min(from+per, len(items))
		if link := linkHeader(s.http.URL, r.URL, per, page, last); link != "" {
			w.Header().Set("Link", link)
		}
		writeJSON(w, http.StatusOK, wrap(len(items), items[from:to]))
	})
}

func intParam(r *http.Request, name string, def int) int {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return n
}

// linkHeader is GitHub's Link header for page of last: prev, next, last and
// first where they apply.
func linkHeader(root string, u *url.URL, per, page, last int) string {
	if last <= 1 {
		return ""
	}
	at := func(p int) string {
		q := u.Query()
		q.Set("per_page", strconv.Itoa(per))
		q.Set("page", strconv.Itoa(p))
		return "<" + root + u.EscapedPath() + "?" + q.Encode() + ">"
	}
	var links []string
	if page > 1 {
		links = append(links, at(min(page-1, last))+`; rel="prev"`)
	}
	if page < last {
		links = append(links, at(page+1)+`; rel="next"`, at(last)+`; rel="last"`)
	}
	if page > 1 {
		links = append(links, at(1)+`; rel="first"`)
	}
	return strings.Join(links, ", ")
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeError(w, notFound()) })

	s.handle(mux, "GET /repos/{owner}/{repo}", s.getRepository)
	s.list(mux, "GET /repos/{owner}/{repo}/actions/organization-secrets", s.listRepoOrgSecrets)
	s.list(mux, "GET /repos/{owner}/{repo}/environments", s.listEnvironments)
	s.handle(mux, "GET /repos/{owner}/{repo}/environments/{env}", s.getEnvironment)
	s.handle(mux, "PUT /repos/{owner}/{repo}/environments/{env}", s.putEnvironment)
	s.handle(mux, "DELETE /repos/{owner}/{repo}/environments/{env}", s.deleteEnvironment)
	s.commentRoutes(mux)

	for _, b := range []struct {
		prefix  string
		resolve func(*http.Request) (*scope, *apiError)
	}{
		{"/repos/{owner}/{repo}/actions", s.repoScope},
		{"/repos/{owner}/{repo}/environments/{env}", s.envScope},
		{"/orgs/{org}/actions", s.orgScope},
	} {
		resolve := b.resolve
		// in and listIn run a route's body on the scope it addresses; a
		// route to none is answered with resolve's error.
		in := func(h func(r *http.Request, sc *scope, now time.Time) (int, any, *apiError)) handler {
			return func(r *http.Request, now time.Time) (int, any, *apiError) {
				sc, e := resolve(r)
				if e != nil {
					return 0, nil, e
				}
				return h(r, sc, now)
			}
		}
		listIn := func(field string, defaultPer, maxPer int, items func(r *http.Request, sc *scope) []any) lister {
			return func(r *http.Request) ([]any, func(int, []any) any, int, int, *apiError) {
				sc, e := resolve(r)
				if e != nil {
					return nil, nil, 0, 0, e
				}
				return items(r, sc), listPage(field), defaultPer, maxPer, nil
			}
		}
		s.handle(mux, "GET "+b.prefix+"/secrets/public-key", in(func(_ *http.Request, sc *scope, _ time.Time) (int, any, *apiError) {
			return http.StatusOK, map[string]string{"key_id": sc.keyID, "key": base64.StdEncoding.EncodeToString(sc.keys[sc.keyID].pub[:])}, nil
		}))
		s.list(mux, "GET "+b.prefix+"/secrets", listIn("secrets", 30, 100, func(r *http.Request, sc *scope) (items []any) {
			for _, sec := range byName(sc.secrets) {
				items = append(items, s.secretJSON(r, sc, sec))
			}
			return items
		}))
		s.handle(mux, "GET "+b.prefix+"/secrets/{name}", in(func(r *http.Request, sc *scope, _ time.Time) (int, any, *apiError) {
			sec := sc.secrets[strings.ToUpper(r.PathValue("name"))]
			if sec == nil {
				return 0, nil, notFound()
			}
			return http.StatusOK, s.secretJSON(r, sc, sec), nil
		}))
		s.handle(mux, "PUT "+b.prefix+"/secrets/{name}", in(s.putSecret))
		s.handle(mux, "DELETE "+b.prefix+"/secrets/{name}", in(func(r *http.Request, sc *scope, _ time.Time) (int, any, *apiError) {
			return deleted(removeNamed(sc.secrets, r.PathValue("name")))
		}))
		s.list(mux, "GET "+b.prefix+"/variables", listIn("variables", 10, 30, func(r *http.Request, sc *scope) (items []any) {
			for _, v := range byName(sc.vars) {
				items = append(items, s.variableJSON(r, sc, v))
			}
			return items
		}))
		s.handle(mux, "GET "+b.prefix+"/variables/{name}", in(func(r *http.Request, sc *scope, _ time.Time) (int, any, *apiError) {
			v := sc.vars[strings.ToUpper(r.PathValue("name"))]
			if v == nil {
				return 0, nil, notFound()
			}
			return http.StatusOK, s.variableJSON(r, sc, v), nil
		}))
		s.handle(mux, "POST "+b.prefix+"/variables", in(s.createVariable))
		s.handle(mux, "PATCH "+b.prefix+"/variables/{name}", in(s.updateVariable))
		s.handle(mux, "DELETE "+b.prefix+"/variables/{name}", in(func(r *http.Request, sc *scope, _ time.Time) (int, any, *apiError) {
			return deleted(removeNamed(sc.vars, r.PathValue("name")))
		}))
	}
	return mux
}

// listPage wraps a page of a list as GitHub does: the total and the page's
// items under field.
func listPage(field string) func(total int, page []any) any {
	return func(total int, page []any) any {
		return map[string]any{"total_count": total, field: nonNil(page)}
	}
}

// deleted answers a DELETE: 204, or 404 when there was nothing to delete.
func deleted(existed bool) (int, any, *apiError) {
	if !existed {
		return 0, nil, notFound()
	}
	return http.StatusNoContent, nil, nil
}

func nonNil(page []any) []any {
	if page == nil {
		return []any{}
	}
	return page
}

// The resolvers find the scope a route addresses; s.mu is held.

func (s *Server) repository(r *http.Request) (*repository, *apiError) {
	repo := s.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
	if repo == nil {
		return nil, notFound()
	}
	return repo, nil
}

func (s *Server) repoScope(r *http.Request) (*scope, *apiError) {
	repo, e := s.repository(r)
	if e != nil {
		return nil, e
	}
	return repo.actions, nil
}

func (s *Server) envScope(r *http.Request) (*scope, *apiError) {
	repo, e := s.repository(r)
	if e != nil {
		return nil, e
	}
	env := repo.envs[strings.ToLower(r.PathValue("env"))]
	if env == nil {
		return nil, notFound()
	}
	return env.scope, nil
}

func (s *Server) orgScope(r *http.Request) (*scope, *apiError) {
	o := s.orgs[strings.ToLower(r.PathValue("org"))]
	if o == nil {
		return nil, notFound()
	}
	return o.scope, nil
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) secretJSON(r *http.Request, sc *scope, sec *secret) map[string]any {
	m := map[string]any{"name": sec.name, "created_at": timestamp(sec.createdAt), "updated_at": timestamp(sec.updatedAt)}
	if sc.what == "organization" {
		m["visibility"] = sec.visibility
		if sec.visibility == "selected" {
			m["selected_repositories_url"] = s.http.URL + "/orgs/" + url.PathEscape(r.PathValue("org")) + "/actions/secrets/" + sec.name + "/repositories"
		}
	}
	return m
}

func (s *Server) variableJSON(r *http.Request, sc *scope, v *variable) map[string]any {
	m := map[string]any{"name": v.name, "value": v.value, "created_at": timestamp(v.createdAt), "updated_at": timestamp(v.updatedAt)}
	if sc.what == "organization" {
		m["visibility"] = v.visibility
		if v.visibility == "selected" {
			m["selected_repositories_url"] = s.http.URL + "/orgs/" + url.PathEscape(r.PathValue("org")) + "/actions/variables/" + v.name + "/repositories"
		}
	}
	return m
}

// validName is GitHub's rule for secret and variable names.
func validName(name string) string {
	switch {
	case name == "":
		return "name can't be blank"
	case name[0] >= '0' && name[0] <= '9':
		return "name must not start with a number"
	case strings.HasPrefix(strings.ToUpper(name), "GITHUB_"):
		return "name must not start with GITHUB_"
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return "name can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_)"
		}
	}
	return ""
}

func decodeBody(r *http.Request, v any) *apiError {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return &apiError{status: http.StatusBadRequest, Message: "Problems parsing JSON", DocumentationURL: docsREST}
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &apiError{status: http.StatusBadRequest, Message: "Problems parsing JSON", DocumentationURL: docsREST}
	}
	return nil
}

// orgVisibility checks the visibility and repositories of an organization
// secret or variable; s.mu is held.
func (s *Server) orgVisibility(resource, docs string, visibility string, ids []int64, required bool) *apiError {
	switch visibility {
	case "":
		if required {
			return invalid(resource, "visibility", "missing_field", "visibility is required for organization "+strings.ToLower(resource)+"s", docs)
		}
	case "all", "private":
		if len(ids) > 0 {
			return invalid(resource, "selected_repository_ids", "invalid", "selected_repository_ids can only be given with visibility selected", docs)
		}
	case "selected":
		for _, id := range ids {
			if !s.repoIDExists(id) {
				return invalid(resource, "selected_repository_ids", "invalid", fmt.Sprintf("repository %d does not exist", id), docs)
			}
		}
	default:
		return invalid(resource, "visibility", "invalid", "visibility must be one of all, private, selected", docs)
	}
	return nil
}

func (s *Server) repoIDExists(id int64) bool {
	for _, r := range s.repos {
		if r.id == id {
			return true
		}
	}
	return false
}

func (s *Server) putSecret(r *http.Request, sc *scope, now time.Time) (int, any, *apiError) {
	name := r.PathValue("name")
	if msg := validName(name); msg != "" {
		return 0, nil, invalid("Secret", "name", "invalid", msg, docsSecrets)
	}
	var body struct {
		EncryptedValue        *string `json:"encrypted_value"`
		KeyID                 *string `json:"key_id"`
		Visibility            string  `json:"visibility"`
		SelectedRepositoryIDs []int64 `json:"selected_repository_ids"`
	}
	if e := decodeBody(r, &body); e != nil {
		return 0, nil, e
	}
	if body.EncryptedValue == nil || body.KeyID == nil {
		return 0, nil, invalid("Secret", "encrypted_value", "missing_field", "encrypted_value and key_id are required", docsSecrets)
	}
	if len(*body.EncryptedValue) > MaxEncryptedSize {
		return 0, nil, invalid("Secret", "encrypted_value", "invalid", fmt.Sprintf("secret value is too large: the maximum size is %d KB", MaxEncryptedSize>>10), docsSecrets)
	}
	if *body.KeyID != sc.keyID {
		return 0, nil, invalid("Secret", "key_id", "invalid", "key_id does not match the current public key", docsSecrets)
	}
	sealed, err := base64.StdEncoding.DecodeString(*body.EncryptedValue)
	if err != nil {
		return 0, nil, invalid("Secret", "encrypted_value", "invalid", "encrypted_value is not valid base64", docsSecrets)
	}
	k := sc.keys[sc.keyID]
	if _, ok := box.OpenAnonymous(nil, sealed, k.pub, k.priv); !ok {
		return 0, nil, invalid("Secret", "encrypted_value", "invalid", "encrypted_value could not be decrypted with key "+sc.keyID, docsSecrets)
	}
	if sc.what == "organization" {
		if e := s.orgVisibility("Secret", docsSecrets, body.Visibility, body.SelectedRepositoryIDs, true); e != nil {
			return 0, nil, e
		}
	}
	key := strings.ToUpper(name)
	sec := sc.secrets[key]
	status := http.StatusNoContent
	if sec == nil {
		if len(sc.secrets) >= sc.maxSecrets {
			return 0, nil, invalid("Secret", "name", "custom", fmt.Sprintf("this %s already has the maximum of %d secrets", sc.what, sc.maxSecrets), docsSecrets)
		}
		sec = &secret{name: key, createdAt: now}
		sc.secrets[key] = sec
		status = http.StatusCreated
	}
	sec.keyID, sec.encrypted, sec.plain, sec.updatedAt = sc.keyID, sealed, "", now
	if sc.what == "organization" {
		sec.visibility = body.Visibility
		sec.selected = nil
		if body.Visibility == "selected" {
			sec.selected = append([]int64(nil), body.SelectedRepositoryIDs...)
		}
	}
	if status == http.StatusCreated {
		return status, map[string]any{}, nil
	}
	return status, nil, nil
}

type variableBody struct {
	Name                  *string `json:"name"`
	Value                 *string `json:"value"`
	Visibility            string  `json:"visibility"`
	SelectedRepositoryIDs []int64 `json:"selected_repository_ids"`
}

func (s *Server) createVariable(r *http.Request, sc *scope, now time.Time) (int, any, *apiError) {
	var body variableBody
	if e := decodeBody(r, &body); e != nil {
		return 0, nil, e
	}
	if body.Name == nil || body.Value == nil {
		return 0, nil, invalid("Variable", "name", "missing_field", "name and value are required", docsVariables)
	}
	if msg := validName(*body.Name); msg != "" {
		return 0, nil, invalid("Variable", "name", "invalid", msg, docsVariables)
	}
	if len(*body.Value) > MaxVariableSize {
		return 0, nil, invalid("Variable", "value", "invalid", fmt.Sprintf("value is too large: the maximum size is %d KB", MaxVariableSize>>10), docsVariables)
	}
	if sc.what == "organization" {
		if e := s.orgVisibility("Variable", docsVariables, body.Visibility, body.SelectedRepositoryIDs, true); e != nil {
			return 0, nil, e
		}
	}
	key := strings.ToUpper(*body.Name)
	if sc.vars[key] != nil {
		return 0, nil, &apiError{status: http.StatusConflict, Message: "Already exists - Variable already exists", DocumentationURL: docsVariables}
	}
	if len(sc.vars) >= sc.maxVars {
		return 0, nil, invalid("Variable", "name", "custom", fmt.Sprintf("this %s already has the maximum of %d variables", sc.what, sc.maxVars), docsVariables)
	}
	v := &variable{name: key, value: *body.Value, createdAt: now, updatedAt: now}
	if sc.what == "organization" {
		v.visibility = body.Visibility
		if body.Visibility == "selected" {
			v.selected = append([]int64(nil), body.SelectedRepositoryIDs...)
		}
	}
	sc.vars[key] = v
	return http.StatusCreated, map[string]any{}, nil
}

func (s *Server) updateVariable(r *http.Request, sc *scope, now time.Time) (int, any, *apiError) {
	key := strings.ToUpper(r.PathValue("name"))
	v := sc.vars[key]
	if v == nil {
		return 0, nil, notFound()
	}
	var body variableBody
	if e := decodeBody(r, &body); e != nil {
		return 0, nil, e
	}
	if body.Value != nil && len(*body.Value) > MaxVariableSize {
		return 0, nil, invalid("Variable", "value", "invalid", fmt.Sprintf("value is too large: the maximum size is %d KB", MaxVariableSize>>10), docsVariables)
	}
	if sc.what == "organization" && body.Visibility != "" {
		if e := s.orgVisibility("Variable", docsVariables, body.Visibility, body.SelectedRepositoryIDs, false); e != nil {
			return 0, nil, e
		}
	}
	if body.Name != nil && !strings.EqualFold(*body.Name, key) {
		if msg := validName(*body.Name); msg != "" {
			return 0, nil, invalid("Variable", "name", "invalid", msg, docsVariables)
		}
		newKey := strings.ToUpper(*body.Name)
		if sc.vars[newKey] != nil {
			return 0, nil, &apiError{status: http.StatusConflict, Message: "Already exists - Variable already exists", DocumentationURL: docsVariables}
		}
		delete(sc.vars, key)
		v.name = newKey
		sc.vars[newKey] = v
	}
	if body.Value != nil {
		v.value = *body.Value
	}
	if sc.what == "organization" && body.Visibility != "" {
		v.visibility = body.Visibility
		v.selected = nil
		if body.Visibility == "selected" {
			v.selected = append([]int64(nil), body.SelectedRepositoryIDs...)
		}
	}
	v.updatedAt = now
	return http.StatusNoContent, nil, nil
}

func (s *Server) getRepository(r *http.Request, _ time.Time) (int, any, *apiError) {
	repo, e := s.repository(r)
	if e != nil {
		return 0, nil, e
	}
	full := repo.owner + "/" + repo.name
	return http.StatusOK, map[string]any{
		"id": repo.id, "node_id": fmt.Sprintf("R_%d", repo.id), "name": repo.name, "full_name": full,
		"owner":   map[string]any{"login": repo.owner, "type": "Organization"},
		"private": true, "html_url": "https://github.com/" + full, "url": s.http.URL + "/repos/" + full,
		"created_at": timestamp(repo.createdAt),
	}, nil
}

// listRepoOrgSecrets lists the organization secrets a repository can use:
// visibility "all", "private" (the emulator's repositories are private) or
// "selected" with the repository among those selected.
func (s *Server) listRepoOrgSecrets(r *http.Request) ([]any, func(int, []any) any, int, int, *apiError) {
	repo, e := s.repository(r)
	if e != nil {
		return nil, nil, 0, 0, e
	}
	var items []any
	if o := s.orgs[strings.ToLower(repo.owner)]; o != nil {
		for _, sec := range byName(o.scope.secrets) {
			if sec.visibility != "selected" || slices.Contains(sec.selected, repo.id) {
				items = append(items, map[string]any{"name": sec.name, "created_at": timestamp(sec.createdAt), "updated_at": timestamp(sec.updatedAt)})
			}
		}
	}
	return items, listPage("secrets"), 30, 100, nil
}

func (s *Server) environmentJSON(repo *repository, e *environment) map[string]any {
	return map[string]any{
		"id": e.id, "node_id": fmt.Sprintf("EN_%d", e.id), "name": e.name,
		"url":        s.http.URL + "/repos/" + repo.owner + "/" + repo.name + "/environments/" + url.PathEscape(e.name),
		"html_url":   "https://github.com/" + repo.owner + "/" + repo.name + "/deployments/activity_log?environments_filter=" + url.QueryEscape(e.name),
		"created_at": timestamp(e.createdAt), "updated_at": timestamp(e.updatedAt),
		"protection_rules": []any{}, "deployment_branch_policy": nil,
	}
}

func (s *Server) listEnvironments(r *http.Request) ([]any, func(int, []any) any, int, int, *apiError) {
	repo, e := s.repository(r)
	if e != nil {
		return nil, nil, 0, 0, e
	}
	var items []any
	for _, name := range sortedEnvNames(repo) {
		items = append(items, s.environmentJSON(repo, repo.envs[name]))
	}
	return items, listPage("environments"), 30, 100, nil
}

func sortedEnvNames(repo *repository) []string {
	names := make([]string, 0, len(repo.envs))
	for k := range repo.envs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func (s *Server) getEnvironment(r *http.Request, _ time.Time) (int, any, *apiError) {
	repo, e := s.repository(r)
	if e != nil {
		return 0, nil, e
	}
	env := repo.envs[strings.ToLower(r.PathValue("env"))]
	if env == nil {
		return 0, nil, notFound()
	}
	return http.StatusOK, s.environmentJSON(repo, env), nil
}

func (s *Server) putEnvironment(r *http.Request, now time.Time) (int, any, *apiError) {
	repo, e := s.repository(r)
	if e != nil {
		return 0, nil, e
	}
	name := r.PathValue("env")
	if name == "" || len(name) > MaxEnvironmentNameLength || strings.TrimSpace(name) != name {
		return 0, nil, invalid("Environment", "name", "invalid", fmt.Sprintf("environment name must be 1 to %d characters without leading or trailing whitespace", MaxEnvironmentNameLength), docsEnvs)
	}
	var body map[string]any
	if e := decodeBody(r, &body); e != nil {
		return 0, nil, e
	}
	env, created := s.addEnvironment(repo, name)
	if !created {
		env.updatedAt = now
	}
	return http.StatusOK, s.environmentJSON(repo, env), nil
}

func (s *Server) deleteEnvironment(r *http.Request, _ time.Time) (int, any, *apiError) {
	repo, e := s.repository(r)
	if e != nil {
		return 0, nil, e
	}
	key := strings.ToLower(r.PathValue("env"))
	if repo.envs[key] == nil {
		return 0, nil, notFound()
	}
	delete(repo.envs, key)
	return http.StatusNoContent, nil, nil
}
