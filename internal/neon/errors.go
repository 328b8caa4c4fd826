package neon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// APIError is a non-2xx answer from the Neon API. Callers classify it with
// errors.As and its fields (or IsOrgIDRequired), never by its text.
type APIError struct {
	Status    int    // HTTP status
	Code      string // Neon's error code; often ""
	Message   string // Neon's message, with the API key redacted should it appear
	RequestID string // Neon's request_id, for support tickets
	Method    string
	Route     string // path template, e.g. "/projects/{project_id}/connection_uri"
	Path      string // the path with ids, without the query
	Attempts  int    // how many tries were made, retries included
	// Hint says, for a human, what is wrong and what to change; "" when
	// there is nothing better to say than Neon's message.
	Hint string
}

// orgIDRequiredText is how Neon words the 400 that a personal API key gets
// from GET /projects without org_id ("org_id is required, you can find it on
// your organization settings page"). It is undocumented in the OpenAPI spec;
// Neon's CLI recognises it by this substring, and so does this client.
const orgIDRequiredText = "org_id is required"

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "neon %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Hint != "" {
		b.WriteString(": " + e.Hint)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " (neon says %q", e.Message)
	} else {
		b.WriteString(" (")
	}
	if e.Message != "" && e.RequestID != "" {
		b.WriteString(", ")
	}
	if e.RequestID != "" {
		b.WriteString("request_id " + e.RequestID)
	}
	if e.Message == "" && e.RequestID == "" {
		b.WriteString("no details")
	}
	b.WriteString(")")
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// OrgIDRequired reports whether Neon refused to list projects because the
// API key needs an organization id.
func (e *APIError) OrgIDRequired() bool {
	return e.Status == http.StatusBadRequest && strings.Contains(e.Message, orgIDRequiredText)
}

// IsOrgIDRequired reports whether err (or an error it wraps) is Neon's
// "org_id is required" answer, which a personal API key gets until
// neon-org-id is set.
func IsOrgIDRequired(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.OrgIDRequired()
}

// IsNotFound reports whether err is a 404 from Neon.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func newAPIError(r request, resp *http.Response, body []byte, scrub func(string) string) *APIError {
	e := &APIError{
		Status: resp.StatusCode,
		Method: r.method,
		Route:  r.route,
		Path:   r.path,
	}
	var g struct {
		RequestID string `json:"request_id"`
		Code      string `json:"code"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(body, &g) == nil {
		e.Code, e.Message, e.RequestID = g.Code, g.Message, g.RequestID
	} else {
		// Not Neon's JSON, e.g. an HTML page from a proxy: keep the start.
		e.Message = snippet(body, 200)
	}
	if e.RequestID == "" {
		e.RequestID = headerRequestID(resp.Header)
	}
	e.Message = scrub(e.Message)
	e.Code = scrub(e.Code)

	switch {
	case e.Status == http.StatusUnauthorized:
		e.Hint = "the API key was rejected; check neon-api-key"
	case e.Status == http.StatusForbidden:
		e.Hint = "the API key lacks access to this resource; use a key of the organization that owns the projects (or set neon-org-id)"
	case e.OrgIDRequired():
		e.Hint = "this API key needs an organization id; set neon-org-id"
	case e.Status == http.StatusNotFound && r.notFound != "":
		e.Hint = r.notFound
	case e.Status == http.StatusTooManyRequests:
		e.Hint = "Neon's rate limit was hit and retries did not get through; lower the concurrency or share the API key with fewer jobs"
	case e.Status == http.StatusLocked:
		e.Hint = "another operation is running on the project; try again when it is done"
	case e.Status == http.StatusBadGateway, e.Status == http.StatusServiceUnavailable, e.Status == http.StatusGatewayTimeout:
		e.Hint = "the Neon API is unavailable; try again later"
	}
	return e
}

func headerRequestID(h http.Header) string {
	if id := h.Get("X-Request-Id"); id != "" {
		return id
	}
	return h.Get("X-Neon-Request-Id")
}

func snippet(body []byte, n int) string {
	s := strings.TrimSpace(string(body))
	if len(s) > n {
		s = s[:n]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// transportError is a request that got no HTTP answer. Its text, fixed
// when it is made, names the request and the cause with the API key
// redacted; it does not keep the key, so not even %#v can show it.
type transportError struct {
	msg string
	err error
}

func newTransportError(method, path string, err error, scrub func(string) string) *transportError {
	return &transportError{msg: scrub(fmt.Sprintf("neon %s %s: %v", method, path, err)), err: err}
}

func (e *transportError) Error() string { return e.msg }

func (e *transportError) Unwrap() error { return e.err }
