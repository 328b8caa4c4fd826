package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/neon"
	"github.com/pgfleet/pgfleet/internal/tenant"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
)

// collect runs a source to the end and returns what it yielded.
func collect(t *testing.T, src tenant.Source) []tenant.Tenant {
	t.Helper()
	var out []tenant.Tenant
	if err := src.Tenants(context.Background(), func(tn tenant.Tenant) bool {
		out = append(out, tn)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func ids(ts []tenant.Tenant) []string {
	out := make([]string, len(ts))
	for i, tn := range ts {
		out[i] = tn.ID
	}
	return out
}

func entries(n int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		out[i] = Entry{Name: fmt.Sprintf("db-%02d", i), URL: fmt.Sprintf("postgres://u:pw%02d@h%02d/db", i, i)}
	}
	return out
}

func TestList(t *testing.T) {
	es := []Entry{
		{Name: "acme-eu", URL: "postgres://u:p1@eu/acme"},
		{Name: "acme-us", URL: "postgres://u:p2@us/acme"},
		{Name: "bolt", URL: "postgres://u:p3@h/bolt"},
		{Name: "acme-test", URL: "postgres://u:p4@h/acmetest"},
	}
	got := collect(t, List(es, tenant.Selector{}))
	if strings.Join(ids(got), ",") != "acme-eu,acme-us,bolt,acme-test" {
		t.Errorf("no selector: %v", ids(got))
	}
	if tn := got[1]; tn.ID != "acme-us" || tn.Name != "acme-us" || tn.URL != "postgres://u:p2@us/acme" || tn.Resolve != nil {
		t.Errorf("tenant %+v: id and name are the entry's name, the URL its URL, nothing to resolve", got[1])
	}

	if got := ids(collect(t, List(es, tenant.Selector{Include: []string{"acme-*"}, Exclude: []string{"*-test"}}))); strings.Join(got, ",") != "acme-eu,acme-us" {
		t.Errorf("include acme-*, exclude *-test: %v", got)
	}
	if got := ids(collect(t, List(es, tenant.Selector{Include: []string{"bolt", "acme-eu"}}))); strings.Join(got, ",") != "acme-eu,bolt" {
		t.Errorf("include two, in the list's order: %v", got)
	}
	if got := collect(t, List(es, tenant.Selector{Include: []string{"nothing*"}})); len(got) != 0 {
		t.Errorf("nothing selected: %v", ids(got))
	}
}

func TestListShards(t *testing.T) {
	all := entries(60)
	seen := map[string]int{}
	total := 0
	for i := 1; i <= 3; i++ {
		shard := tenant.Shard{Index: i, Count: 3}
		got := collect(t, List(all, tenant.Selector{Shard: shard}))
		if len(got) == 0 || len(got) == len(all) {
			t.Errorf("shard %d/3 has %d of %d tenants", i, len(got), len(all))
		}
		for _, tn := range got {
			seen[tn.ID]++
			if !shard.Contains(tn.ID) {
				t.Errorf("shard %d/3 yielded %s, which it does not contain", i, tn.ID)
			}
		}
		total += len(got)
	}
	if total != len(all) || len(seen) != len(all) {
		t.Errorf("3 shards cover %d tenants (%d distinct), want each of %d once", total, len(seen), len(all))
	}
}

const apiKey = "napi_source_test_key_0123456789abcdef"

// emulator starts the Neon emulator holding n projects ("tenant-0000"...,
// named "Tenant 0"...), each with a neondb database whose password is
// "secret-<i>", and checks every exchange against Neon's OpenAPI spec.
func emulator(t *testing.T, n int) *neonapi.Server {
	t.Helper()
	spec, err := neonapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	s := neonapi.New(neonapi.Config{APIKey: apiKey, Spec: spec})
	t.Cleanup(func() {
		s.Close()
		for _, v := range s.SpecViolations() {
			t.Errorf("not per Neon's spec: %s", v)
		}
	})
	s.AddNumberedProjects(n, func(i int) string { return fmt.Sprintf("secret-%d", i) })
	return s
}

func client(s *neonapi.Server) *neon.Client {
	return neon.New(neon.Options{
		BaseURL:           s.URL(),
		APIKey:            apiKey,
		RequestsPerMinute: 1_000_000,
		PerRouteRPS:       100_000,
		BaseBackoff:       time.Millisecond,
		MaxBackoff:        10 * time.Millisecond,
	})
}

func requests(s *neonapi.Server, route string) []neonapi.RequestRecord {
	var out []neonapi.RequestRecord
	for _, r := range s.Requests() {
		if r.Route == route {
			out = append(out, r)
		}
	}
	return out
}

const (
	listRoute   = "GET /projects"
	uriRoute    = "GET /projects/{project_id}/connection_uri"
	branchRoute = "GET /projects/{project_id}/branches"
)

func TestNeonPagesEveryProjectOnce(t *testing.T) {
	const n = 901 // pages of 400, 400 and 101
	s := emulator(t, n)
	src := &Neon{Client: client(s), Database: "neondb", Role: "neondb_owner"}
	got := collect(t, src)
	if len(got) != n {
		t.Fatalf("%d tenants, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for i, tn := range got {
		if want := fmt.Sprintf("tenant-%04d", i); tn.ID != want || tn.Name != fmt.Sprintf("Tenant %d", i) {
			t.Fatalf("tenant %d is %s (%s), want %s in the API's order", i, tn.ID, tn.Name, want)
		}
		if seen[tn.ID] {
			t.Fatalf("%s yielded twice", tn.ID)
		}
		seen[tn.ID] = true
		if tn.URL != "" || tn.Resolve == nil {
			t.Fatalf("%s: the URL is resolved lazily, when the tenant starts", tn.ID)
		}
	}
	if pages := requests(s, listRoute); len(pages) != 3 {
		t.Errorf("%d pages requested, want 3", len(pages))
	} else if pages[0].Query.Get("limit") != "400" || pages[1].Query.Get("cursor") != "tenant-0399" || pages[2].Query.Get("cursor") != "tenant-0799" {
		t.Errorf("paging queries %v, %v, %v", pages[0].Query, pages[1].Query, pages[2].Query)
	}
	if len(requests(s, uriRoute)) != 0 {
		t.Errorf("listing fetched connection URIs")
	}
}

func TestNeonYieldsEachPageAsItArrives(t *testing.T) {
	s := emulator(t, 850)
	src := &Neon{Client: client(s), Database: "neondb", Role: "neondb_owner"}

	// The consumer sees the first page before the second is asked for, and
	// stopping early asks no more pages.
	n := 0
	err := src.Tenants(context.Background(), func(tn tenant.Tenant) bool {
		n++
		if n == 1 && len(requests(s, listRoute)) != 1 {
			t.Errorf("the first tenant came after %d pages were fetched", len(requests(s, listRoute)))
		}
		return n < 10
	})
	if err != nil || n != 10 {
		t.Errorf("stopped at 10: %d yielded, err %v", n, err)
	}
	if pages := len(requests(s, listRoute)); pages != 1 {
		t.Errorf("%d pages fetched after stopping on the first", pages)
	}

	// Cancelled while listing: the listing ends with the cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n = 0
	err = src.Tenants(ctx, func(tenant.Tenant) bool {
		n++
		if n == 5 {
			cancel()
		}
		return true
	})
	if !errors.Is(err, context.Canceled) || n >= 850 {
		t.Errorf("cancelled at 5: %d yielded, err %v", n, err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	err = src.Tenants(ctx, func(tenant.Tenant) bool { cancel(); return false })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled and stopped: err %v", err)
	}
}

// TestNeonShiftingListing: a listing that shifts while it is paged (a
// project created or deleted meanwhile) can hand one project out on two
// pages; it is still yielded once.
func TestNeonShiftingListing(t *testing.T) {
	project := func(i int) map[string]any {
		return map[string]any{"id": fmt.Sprintf("p-%03d", i), "name": fmt.Sprintf("P %d", i)}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var page []map[string]any
		from, to := 0, 400
		if r.URL.Query().Get("cursor") != "" {
			from, to = 395, 420 // the last 5 of page 1 again
		}
		for i := from; i < to; i++ {
			page = append(page, project(i))
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"projects": page, "pagination": map[string]string{"cursor": fmt.Sprintf("p-%03d", to-1)}})
	}))
	defer srv.Close()
	src := &Neon{Client: neon.New(neon.Options{BaseURL: srv.URL, APIKey: apiKey}), Database: "neondb", Role: "neondb_owner"}
	got := ids(collect(t, src))
	if len(got) != 420 || got[399] != "p-399" || got[400] != "p-400" || got[419] != "p-419" {
		t.Errorf("%d tenants (%v ... %v), want p-000 to p-419 once each", len(got), got[:3], got[len(got)-3:])
	}
}

func TestNeonSelector(t *testing.T) {
	s := emulator(t, 450)
	src := &Neon{Client: client(s), Database: "neondb", Role: "neondb_owner", Selector: tenant.Selector{
		Include: []string{"tenant-00[0-4]?", "Tenant 44?"}, // by id, and by name (on the second page)
		Exclude: []string{"tenant-0003", "Tenant 1?"},
	}}
	got := ids(collect(t, src))
	var want []string
	for i := range 50 {
		if i != 3 && (i < 10 || i >= 20) {
			want = append(want, fmt.Sprintf("tenant-%04d", i))
		}
	}
	for i := 440; i < 450; i++ {
		want = append(want, fmt.Sprintf("tenant-%04d", i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("selected\n got %v\nwant %v", got, want)
	}

	// Shards of the Neon fleet cover it once.
	seen := map[string]int{}
	for i := 1; i <= 4; i++ {
		src := &Neon{Client: client(s), Database: "neondb", Role: "neondb_owner", Selector: tenant.Selector{Shard: tenant.Shard{Index: i, Count: 4}}}
		for _, tn := range collect(t, src) {
			seen[tn.ID]++
		}
	}
	if len(seen) != 450 {
		t.Errorf("4 shards cover %d of 450 projects", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d shards", id, n)
		}
	}
}

func TestNeonResolve(t *testing.T) {
	s := emulator(t, 3)
	var mu sync.Mutex
	var secrets []string
	src := &Neon{Client: client(s), Database: "neondb", Role: "neondb_owner", OnSecret: func(pw string) {
		mu.Lock()
		defer mu.Unlock()
		secrets = append(secrets, pw)
	}}
	got := collect(t, src)
	uri, err := got[1].Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if uri != "postgresql://neondb_owner:secret-1@ep-t1.us-east-2.aws.neon.tech/neondb?sslmode=require" {
		t.Errorf("uri %q: want the unpooled one", uri)
	}
	if fmt.Sprint(secrets) != "[secret-1]" {
		t.Errorf("OnSecret was told %q", secrets)
	}
	reqs := requests(s, uriRoute)
	if len(reqs) != 1 {
		t.Fatalf("%d connection_uri requests", len(reqs))
	}
	q := reqs[0].Query
	if reqs[0].Path != neonapi.PathPrefix+"/projects/tenant-0001/connection_uri" || q.Get("database_name") != "neondb" ||
		q.Get("role_name") != "neondb_owner" || q.Get("pooled") != "false" || q.Has("branch_id") {
		t.Errorf("request %s?%s", reqs[0].Path, q.Encode())
	}
	if len(requests(s, branchRoute)) != 0 {
		t.Errorf("no branch given, yet branches were looked up")
	}

	// Pooled, when asked: the -pooler host.
	src.Pooled = true
	if uri, err := collect(t, src)[0].Resolve(context.Background()); err != nil ||
		uri != "postgresql://neondb_owner:secret-0@ep-t0-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require" {
		t.Errorf("pooled: %q, %v", uri, err)
	}
	if reqs := requests(s, uriRoute); reqs[len(reqs)-1].Query.Get("pooled") != "true" {
		t.Errorf("pooled request %v", reqs[len(reqs)-1].Query)
	}
	src.Pooled = false

	// Without OnSecret, Resolve still works.
	src.OnSecret = nil
	if uri, err := collect(t, src)[2].Resolve(context.Background()); err != nil || !strings.Contains(uri, "secret-2@") {
		t.Errorf("resolve without OnSecret: %v", err)
	}

	// A role the project does not have: an error naming it, no secret.
	src.Role, src.OnSecret = "someone_else", func(pw string) { t.Errorf("OnSecret(%q) on a failed resolve", pw) }
	if _, err := collect(t, src)[0].Resolve(context.Background()); err == nil || !strings.Contains(err.Error(), "someone_else") {
		t.Errorf("unknown role: %v", err)
	}
}

func TestNeonBranch(t *testing.T) {
	s := emulator(t, 0)
	uri := func(host string) string {
		return "postgresql://neondb_owner:pw-" + host + "@" + host + ".us-east-2.aws.neon.tech/neondb?sslmode=require"
	}
	s.AddProject(neonapi.Project{
		ID: "proj-b",
		Branches: []neonapi.Branch{
			{ID: "br-main-00000001", Name: "main", Default: true, Databases: map[string]neonapi.Database{"neondb": {URI: uri("ep-main")}}},
			{ID: "br-staging-00000002", Name: "staging", Databases: map[string]neonapi.Database{"neondb": {URI: uri("ep-staging")}}},
			{ID: "br-staging-old-00000003", Name: "staging-old", Databases: map[string]neonapi.Database{"neondb": {URI: uri("ep-staging-old")}}},
		},
	})
	var secrets []string
	resolve := func(branch string) (string, error) {
		t.Helper()
		src := &Neon{Client: client(s), Database: "neondb", Role: "neondb_owner", Branch: branch, OnSecret: func(pw string) { secrets = append(secrets, pw) }}
		got := collect(t, src)
		if len(got) != 1 {
			t.Fatalf("%d tenants", len(got))
		}
		return got[0].Resolve(context.Background())
	}

	for branch, want := range map[string]string{
		"":                        "ep-main",
		"staging":                 "ep-staging", // a name, resolved to its id (not "staging-old", which also matches the search)
		"br-staging-00000002":     "ep-staging", // an id
		"staging-old":             "ep-staging-old",
		"br-staging-old-00000003": "ep-staging-old",
	} {
		before := len(requests(s, uriRoute))
		got, err := resolve(branch)
		if err != nil || got != uri(want) {
			t.Errorf("branch %q: %q, %v; want %s", branch, got, err, want)
			continue
		}
		reqs := requests(s, uriRoute)[before:]
		wantID := map[string]string{"ep-main": "", "ep-staging": "br-staging-00000002", "ep-staging-old": "br-staging-old-00000003"}[want]
		if len(reqs) != 1 || reqs[0].Query.Get("branch_id") != wantID || reqs[0].Query.Get("pooled") != "false" {
			t.Errorf("branch %q: connection_uri requests %v", branch, reqs)
		}
	}
	if !slices.Contains(secrets, "pw-ep-staging") || !slices.Contains(secrets, "pw-ep-main") {
		t.Errorf("secrets %v", secrets)
	}

	if _, err := resolve("production"); !errors.Is(err, neon.ErrBranchNotFound) || !strings.Contains(err.Error(), "production") {
		t.Errorf("unknown branch: %v", err)
	}
}

func TestNeonStopsMidPageWhenCancelled(t *testing.T) {
	s := emulator(t, 50) // one page
	src := &Neon{Client: client(s), Database: "neondb", Role: "neondb_owner"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	yielded := 0
	err := src.Tenants(ctx, func(tenant.Tenant) bool {
		yielded++
		cancel() // a consumer that does not notice: the source must
		return true
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Tenants returned %v, want context.Canceled", err)
	}
	if yielded != 1 {
		t.Errorf("%d tenants yielded after the run was cancelled at the first, want 1", yielded)
	}
}
