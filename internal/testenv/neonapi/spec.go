package neonapi

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// SpecEnv names an environment variable that, when set, is the path of
// neon-openapi.json; it overrides the search FindSpec does.
const SpecEnv = "NEON_OPENAPI_SPEC"

// specRelPath is where the spec lives relative to some ancestor of the
// repository (the shared folder beside the checkout).
var specRelPath = filepath.Join("shared", "neon-openapi.json")

// FindSpec returns the path of Neon's OpenAPI spec: $NEON_OPENAPI_SPEC, or
// the first shared/neon-openapi.json found walking up from dir. The spec is
// kept outside the module (it is Neon's, 0.5 MB), so tests look for it
// rather than embed it.
func FindSpec(dir string) (string, error) {
	if p := os.Getenv(SpecEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", SpecEnv, err)
		}
		return p, nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, specRelPath)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s in %s or any parent, and %s is not set", specRelPath, dir, SpecEnv)
		}
		dir = parent
	}
}

// embeddedSpec is a copy of Neon's spec (shared/neon-openapi.json, which the
// emulator follows), kept in the repository so a fresh clone checks the
// emulator and the client against it with nothing else present.
// TestEmbeddedSpecMatchesShared flags drift from shared/ when it is there.
//
//go:embed testdata/neon-openapi.json
var embeddedSpec []byte

var (
	specOnce sync.Once
	specDoc  *openapi3.T
	specErr  error
)

// Spec returns Neon's spec: $NEON_OPENAPI_SPEC when set, else the copy in
// this package. It is loaded once per process.
func Spec() (*openapi3.T, error) {
	specOnce.Do(func() {
		if p := os.Getenv(SpecEnv); p != "" {
			specDoc, specErr = LoadSpec(p)
			return
		}
		specDoc, specErr = openapi3.NewLoader().LoadFromData(embeddedSpec)
	})
	return specDoc, specErr
}

// LoadSpec loads Neon's OpenAPI spec for Config.Spec.
//
// It deliberately does not call doc.Validate: the spec has a pattern Go's
// regexp cannot compile (project_ids on GET /consumption_history/projects
// nests {1,60} inside {0,99}, over Go's repeat limit of 1000), which fails
// validation of the whole document. That endpoint is not served here, and
// patterns are compiled lazily per schema, so the endpoints the emulator
// serves still validate fully.
func LoadSpec(path string) (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return doc, nil
}

// SpecViolation is one request or response that does not conform to the
// spec.
type SpecViolation struct {
	Kind   string // "route", "request" or "response"
	Method string
	Path   string // with query
	Status int
	Err    string
}

func (v SpecViolation) String() string {
	return fmt.Sprintf("%s %s %s -> %d: %s", v.Kind, v.Method, v.Path, v.Status, v.Err)
}

type specChecker struct {
	router routers.Router
}

// specServer is the server URL the router matches requests against. The
// spec's own (https://console.neon.tech/api/v2) cannot match requests to a
// local port, so check rewrites each request to this host before routing.
const specServer = "http://neonapi.invalid" + PathPrefix

func newSpecChecker(spec *openapi3.T) (*specChecker, error) {
	doc := *spec // shallow copy: the caller's Servers stay as they are
	doc.Servers = openapi3.Servers{{URL: specServer}}
	router, err := gorillamux.NewRouter(&doc)
	if err != nil {
		return nil, fmt.Errorf("route spec: %w", err)
	}
	return &specChecker{router: router}, nil
}

// check validates one exchange and returns what does not conform.
func (c *specChecker) check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) []SpecViolation {
	r := req.Clone(context.Background())
	r.URL.Scheme = "http"
	r.URL.Host = "neonapi.invalid"
	r.Host = "neonapi.invalid"
	r.Body = http.NoBody
	if len(reqBody) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	at := func(kind string, err error) SpecViolation {
		return SpecViolation{Kind: kind, Method: req.Method, Path: req.URL.RequestURI(), Status: status, Err: err.Error()}
	}
	route, pathParams, err := c.router.FindRoute(r)
	if err != nil {
		return []SpecViolation{at("route", err)}
	}
	ctx := context.Background()
	var out []SpecViolation
	reqInput := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: pathParams,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         true,
		},
	}
	if err := openapi3filter.ValidateRequest(ctx, reqInput); err != nil {
		out = append(out, at("request", err))
	}
	respInput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, respInput); err != nil {
		out = append(out, at("response", err))
	}
	return out
}
