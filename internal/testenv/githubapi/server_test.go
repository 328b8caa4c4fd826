package githubapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"
)

const token = "ghs_emulatortoken0123456789"

type call struct {
	status int
	header http.Header
	body   map[string]any
}

func do(t *testing.T, s *Server, method, path string, body any) call {
	t.Helper()
	return doAs(t, s, "Bearer "+token, method, path, body)
}

func doAs(t *testing.T, s *Server, auth, method, path string, body any) call {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL()+strings.TrimPrefix(path, "/"), r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	c := call{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c.body); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, raw)
		}
	}
	return c
}

// seal encrypts value for the target served under base (e.g.
// /repos/o/r/actions), as a client would.
func seal(t *testing.T, s *Server, base, value string) map[string]any {
	t.Helper()
	k := do(t, s, "GET", base+"/secrets/public-key", nil)
	if k.status != 200 {
		t.Fatalf("public key: %d %v", k.status, k.body)
	}
	raw, err := base64.StdEncoding.DecodeString(k.body["key"].(string))
	if err != nil || len(raw) != 32 {
		t.Fatalf("public key %q is not 32 bytes of base64", k.body["key"])
	}
	var pub [32]byte
	copy(pub[:], raw)
	sealed, err := box.SealAnonymous(nil, []byte(value), &pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"key_id": k.body["key_id"], "encrypted_value": base64.StdEncoding.EncodeToString(sealed)}
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = token
	}
	s := Start(cfg)
	t.Cleanup(s.Close)
	s.AddRepository("acme", "app")
	s.AddOrganization("acme")
	s.AddEnvironment("acme", "app", "tenant-a")
	return s
}

func TestAuthentication(t *testing.T) {
	s := start(t, Config{})
	if c := doAs(t, s, "", "GET", "/repos/acme/app/actions/secrets", nil); c.status != 401 || c.body["message"] != "Requires authentication" {
		t.Errorf("no token: %d %v", c.status, c.body)
	}
	if c := doAs(t, s, "Bearer wrong", "GET", "/repos/acme/app/actions/secrets", nil); c.status != 401 || c.body["message"] != "Bad credentials" {
		t.Errorf("wrong token: %d %v", c.status, c.body)
	}
	if c := doAs(t, s, "token "+token, "GET", "/repos/acme/app/actions/secrets", nil); c.status != 200 {
		t.Errorf("token scheme: %d %v", c.status, c.body)
	}
}

func TestSecretLifecycleEveryTarget(t *testing.T) {
	s := start(t, Config{})
	for _, tc := range []struct {
		base   string
		target Target
		extra  map[string]any
	}{
		{"/repos/acme/app/actions", Repo("acme", "app"), nil},
		{"/repos/acme/app/environments/tenant-a", Env("acme", "app", "tenant-a"), nil},
		{"/orgs/acme/actions", Org("acme"), map[string]any{"visibility": "private"}},
	} {
		t.Run(tc.target.String(), func(t *testing.T) {
			body := seal(t, s, tc.base, "postgres://u:pw@host/db")
			for k, v := range tc.extra {
				body[k] = v
			}
			if c := do(t, s, "PUT", tc.base+"/secrets/db_url", body); c.status != 201 {
				t.Fatalf("create: %d %v", c.status, c.body)
			}
			v, updated, ok := s.Secret(tc.target, "DB_URL")
			if !ok || v != "postgres://u:pw@host/db" {
				t.Fatalf("stored %q %v, want the value sealed", v, ok)
			}
			g := do(t, s, "GET", tc.base+"/secrets/DB_URL", nil)
			if g.status != 200 || g.body["name"] != "DB_URL" || g.body["updated_at"] != updated.Format(time.RFC3339) {
				t.Fatalf("get: %d %v (updated %v)", g.status, g.body, updated)
			}
			body = seal(t, s, tc.base, "postgres://u:pw2@host/db")
			for k, v := range tc.extra {
				body[k] = v
			}
			if c := do(t, s, "PUT", tc.base+"/secrets/DB_URL", body); c.status != 204 {
				t.Fatalf("update: %d %v", c.status, c.body)
			}
			if v, _, _ := s.Secret(tc.target, "db_url"); v != "postgres://u:pw2@host/db" {
				t.Fatalf("after update %q", v)
			}
			if c := do(t, s, "DELETE", tc.base+"/secrets/DB_URL", nil); c.status != 204 {
				t.Fatalf("delete: %d", c.status)
			}
			if c := do(t, s, "DELETE", tc.base+"/secrets/DB_URL", nil); c.status != 404 || c.body["message"] != "Not Found" {
				t.Fatalf("delete again: %d %v", c.status, c.body)
			}
			if c := do(t, s, "GET", tc.base+"/secrets/DB_URL", nil); c.status != 404 {
				t.Fatalf("get deleted: %d", c.status)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	s := start(t, Config{})
	base := "/repos/acme/app/actions"
	for _, name := range []string{"1ABC", "GITHUB_TOKEN", "github_x", "A-B", "A%20B"} {
		c := do(t, s, "PUT", base+"/secrets/"+name, seal(t, s, base, "v"))
		errs, _ := c.body["errors"].([]any)
		if c.status != 422 || c.body["message"] != "Validation Failed" || len(errs) != 1 || c.body["documentation_url"] == nil {
			t.Errorf("name %q: %d %v", name, c.status, c.body)
		}
	}
	big := seal(t, s, base, strings.Repeat("x", 36817)) // 4·⌈(36817+48)/3⌉ = 49,156 > 49,152
	if c := do(t, s, "PUT", base+"/secrets/BIG", big); c.status != 422 {
		t.Errorf("too large: %d %v", c.status, c.body)
	}
	fits := seal(t, s, base, strings.Repeat("x", 36816))
	if c := do(t, s, "PUT", base+"/secrets/FITS", fits); c.status != 201 {
		t.Errorf("largest that fits: %d %v", c.status, c.body)
	}
	stale := seal(t, s, base, "v")
	s.RotateKey(Repo("acme", "app"))
	if c := do(t, s, "PUT", base+"/secrets/STALE", stale); c.status != 422 {
		t.Errorf("stale key_id: %d %v", c.status, c.body)
	}
	if v, _, _ := s.Secret(Repo("acme", "app"), "FITS"); len(v) != 36816 {
		t.Errorf("a secret stored before rotation no longer opens")
	}
	if c := do(t, s, "PUT", "/orgs/acme/actions/secrets/NOVIS", seal(t, s, "/orgs/acme/actions", "v")); c.status != 422 {
		t.Errorf("organization secret without visibility: %d %v", c.status, c.body)
	}
	body := seal(t, s, "/orgs/acme/actions", "v")
	body["visibility"], body["selected_repository_ids"] = "selected", []int64{424242}
	if c := do(t, s, "PUT", "/orgs/acme/actions/secrets/SEL", body); c.status != 422 {
		t.Errorf("unknown selected repository: %d %v", c.status, c.body)
	}
	if c := do(t, s, "GET", "/repos/acme/app/environments/nope/secrets", nil); c.status != 404 {
		t.Errorf("missing environment: %d", c.status)
	}
	if c := do(t, s, "GET", "/repos/acme/nope/actions/secrets", nil); c.status != 404 {
		t.Errorf("missing repository: %d", c.status)
	}
	id := s.AddRepository("acme", "app")
	if c := do(t, s, "GET", fmt.Sprintf("/repositories/%d/environments/tenant-a/secrets", id), nil); c.status != 404 {
		t.Errorf("the legacy /repositories/{id} route is served: %d", c.status)
	}
}

func TestSecretLimits(t *testing.T) {
	s := start(t, Config{})
	for _, tc := range []struct {
		base   string
		target Target
		max    int
		extra  map[string]any
	}{
		{"/repos/acme/app/actions", Repo("acme", "app"), MaxRepositorySecrets, nil},
		{"/repos/acme/app/environments/tenant-a", Env("acme", "app", "tenant-a"), MaxEnvironmentSecrets, nil},
		{"/orgs/acme/actions", Org("acme"), MaxOrganizationSecrets, map[string]any{"visibility": "all"}},
	} {
		for i := range tc.max {
			s.SetSecret(tc.target, fmt.Sprintf("S%04d", i), "v", time.Time{})
		}
		body := seal(t, s, tc.base, "v")
		for k, v := range tc.extra {
			body[k] = v
		}
		if c := do(t, s, "PUT", tc.base+"/secrets/ONE_MORE", body); c.status != 422 {
			t.Errorf("%s: secret %d: %d %v", tc.target, tc.max+1, c.status, c.body)
		}
		if c := do(t, s, "PUT", tc.base+"/secrets/S0000", body); c.status != 204 {
			t.Errorf("%s: updating a secret of a full target: %d %v", tc.target, c.status, c.body)
		}
	}
}

func TestPaging(t *testing.T) {
	s := start(t, Config{})
	for i := range 250 {
		s.SetSecret(Org("acme"), fmt.Sprintf("S%04d", i), "v", time.Time{})
	}
	c := do(t, s, "GET", "/orgs/acme/actions/secrets", nil)
	if n := len(c.body["secrets"].([]any)); n != 30 || c.body["total_count"] != float64(250) {
		t.Errorf("default page: %d secrets, total %v", n, c.body["total_count"])
	}
	if link := c.header.Get("Link"); !strings.Contains(link, `page=2&per_page=30>; rel="next"`) || !strings.Contains(link, `page=9&per_page=30>; rel="last"`) {
		t.Errorf("Link %q", link)
	}
	c = do(t, s, "GET", "/orgs/acme/actions/secrets?per_page=500&page=3", nil)
	if n := len(c.body["secrets"].([]any)); n != 50 {
		t.Errorf("page 3 of 100: %d secrets", n)
	}
	if link := c.header.Get("Link"); strings.Contains(link, `rel="next"`) || !strings.Contains(link, `page=2&per_page=100>; rel="prev"`) {
		t.Errorf("last page Link %q", link)
	}
	for i := range 35 {
		s.SetVariable(Repo("acme", "app"), fmt.Sprintf("V%02d", i), "x")
	}
	if c := do(t, s, "GET", "/repos/acme/app/actions/variables", nil); len(c.body["variables"].([]any)) != 10 {
		t.Errorf("variables default page: %v", len(c.body["variables"].([]any)))
	}
	if c := do(t, s, "GET", "/repos/acme/app/actions/variables?per_page=100", nil); len(c.body["variables"].([]any)) != 30 {
		t.Errorf("variables max page: %v", len(c.body["variables"].([]any)))
	}
	if c := do(t, s, "GET", "/repos/acme/app/actions/variables?page=9", nil); len(c.body["variables"].([]any)) != 0 {
		t.Errorf("a page past the end is not empty")
	}
}

func TestEnvironmentsAndRepository(t *testing.T) {
	s := start(t, Config{})
	c := do(t, s, "PUT", "/repos/acme/app/environments/tenant-b", nil)
	if c.status != 200 || c.body["name"] != "tenant-b" {
		t.Fatalf("create: %d %v", c.status, c.body)
	}
	if c := do(t, s, "PUT", "/repos/acme/app/environments/TENANT-B", map[string]any{}); c.status != 200 || c.body["name"] != "tenant-b" {
		t.Errorf("names are not case sensitive: %d %v", c.status, c.body)
	}
	if got := s.Environments("acme", "app"); strings.Join(got, ",") != "tenant-a,tenant-b" {
		t.Errorf("environments %v", got)
	}
	if c := do(t, s, "GET", "/repos/acme/app/environments", nil); c.body["total_count"] != float64(2) {
		t.Errorf("list: %v", c.body)
	}
	if c := do(t, s, "PUT", "/repos/acme/app/environments/"+strings.Repeat("e", 256), nil); c.status != 422 {
		t.Errorf("256-character name: %d", c.status)
	}
	if c := do(t, s, "GET", "/repos/acme/app/environments/nope", nil); c.status != 404 {
		t.Errorf("missing: %d", c.status)
	}
	if c := do(t, s, "GET", "/repos/acme/app", nil); c.body["id"] != float64(s.AddRepository("acme", "app")) || c.body["full_name"] != "acme/app" {
		t.Errorf("repository: %v", c.body)
	}
}

func TestVariables(t *testing.T) {
	s := start(t, Config{})
	base := "/repos/acme/app/environments/tenant-a/variables"
	if c := do(t, s, "POST", base, map[string]any{"name": "fp", "value": "one"}); c.status != 201 {
		t.Fatalf("create: %d %v", c.status, c.body)
	}
	if c := do(t, s, "POST", base, map[string]any{"name": "FP", "value": "one"}); c.status != 409 {
		t.Errorf("create existing: %d", c.status)
	}
	if c := do(t, s, "PATCH", base+"/FP", map[string]any{"name": "FP", "value": "two"}); c.status != 204 {
		t.Errorf("update: %d %v", c.status, c.body)
	}
	if v, _ := s.Variable(Env("acme", "app", "tenant-a"), "fp"); v != "two" {
		t.Errorf("value %q", v)
	}
	if c := do(t, s, "GET", base+"/FP", nil); c.body["value"] != "two" {
		t.Errorf("get: %v", c.body)
	}
	if c := do(t, s, "POST", base, map[string]any{"name": "GITHUB_X", "value": "v"}); c.status != 422 {
		t.Errorf("reserved name: %d", c.status)
	}
	if c := do(t, s, "POST", "/orgs/acme/actions/variables", map[string]any{"name": "X", "value": "v"}); c.status != 422 {
		t.Errorf("organization variable without visibility: %d", c.status)
	}
	if c := do(t, s, "DELETE", base+"/FP", nil); c.status != 204 {
		t.Errorf("delete: %d", c.status)
	}
	if c := do(t, s, "PATCH", base+"/FP", map[string]any{"value": "x"}); c.status != 404 {
		t.Errorf("update missing: %d", c.status)
	}
}

func TestRateLimitAnswers(t *testing.T) {
	clock := NewFakeClock(time.Time{})
	s := start(t, Config{Now: clock.Now})
	s.RateLimitWrites(1, RateLimit{})
	s.RateLimitWrites(1, RateLimit{Status: 429, Wait: 3 * time.Second})
	s.RateLimitWrites(1, RateLimit{Reset: true, Wait: 10 * time.Second})
	body := map[string]any{"name": "V", "value": "v"}
	c := do(t, s, "POST", "/repos/acme/app/actions/variables", body)
	if c.status != 403 || c.header.Get("Retry-After") != "1" || !strings.Contains(c.body["message"].(string), "secondary rate limit") {
		t.Errorf("403: %d %v %v", c.status, c.header, c.body)
	}
	if c := do(t, s, "GET", "/repos/acme/app/actions/variables", nil); c.status != 200 {
		t.Errorf("a read was rate limited: %d", c.status)
	}
	c = do(t, s, "POST", "/repos/acme/app/actions/variables", body)
	if c.status != 429 || c.header.Get("Retry-After") != "3" {
		t.Errorf("429: %d %v", c.status, c.header)
	}
	c = do(t, s, "POST", "/repos/acme/app/actions/variables", body)
	want := fmt.Sprint(clock.Now().Unix() + 10)
	if c.status != 403 || c.header.Get("X-Ratelimit-Remaining") != "0" || c.header.Get("X-Ratelimit-Reset") != want {
		t.Errorf("primary: %d %v", c.status, c.header)
	}
	if c := do(t, s, "POST", "/repos/acme/app/actions/variables", body); c.status != 201 {
		t.Errorf("after the injected limits: %d", c.status)
	}
	if w := s.Writes(); len(w) != 4 || w[0].Status != 403 || w[3].Status != 201 {
		t.Errorf("writes %+v", w)
	}
}

func TestEnforcedWriteLimits(t *testing.T) {
	clock := NewFakeClock(time.Time{})
	s := start(t, Config{Now: clock.Now, EnforceWriteLimits: true})
	for i := range WritesPerMinute {
		if c := do(t, s, "POST", "/repos/acme/app/actions/variables", map[string]any{"name": fmt.Sprintf("V%d", i), "value": "v"}); c.status != 201 {
			t.Fatalf("write %d: %d", i, c.status)
		}
		clock.Advance(100 * time.Millisecond)
	}
	c := do(t, s, "POST", "/repos/acme/app/actions/variables", map[string]any{"name": "ONE_MORE", "value": "v"})
	if c.status != 403 || c.header.Get("Retry-After") != "52" { // the first write leaves the minute 52 s later
		t.Fatalf("write 81 within a minute: %d %v", c.status, c.header.Get("Retry-After"))
	}
	clock.Advance(52 * time.Second)
	if c := do(t, s, "POST", "/repos/acme/app/actions/variables", map[string]any{"name": "ONE_MORE", "value": "v"}); c.status != 201 {
		t.Fatalf("after waiting: %d", c.status)
	}
}

func TestMinWriteInterval(t *testing.T) {
	clock := NewFakeClock(time.Time{})
	s := start(t, Config{Now: clock.Now, MinWriteInterval: time.Second, RetryAfter: 2 * time.Second})
	write := func(name string) call {
		return do(t, s, "POST", "/repos/acme/app/actions/variables", map[string]any{"name": name, "value": "v"})
	}
	if c := write("A"); c.status != 201 {
		t.Fatalf("first write: %d", c.status)
	}
	clock.Advance(999 * time.Millisecond)
	if c := write("B"); c.status != 403 || c.header.Get("Retry-After") != "2" || !strings.Contains(c.body["message"].(string), "secondary rate limit") {
		t.Fatalf("a write 999 ms after the last: %d %v", c.status, c.header)
	}
	clock.Advance(time.Millisecond) // a refused write does not restart the interval
	if c := write("B"); c.status != 201 {
		t.Fatalf("a write 1 s after the last admitted: %d", c.status)
	}
}
