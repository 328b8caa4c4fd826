package syncsecrets

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/config"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/tenant"
	"github.com/pgfleet/pgfleet/internal/testenv/githubapi"
)

var repo = githubapi.Repo("o", "r")

// Thirty tenants to a repository: each secret decrypts to the tenant's
// pooled connection string; a re-run writes nothing; one changed password
// rewrites exactly that secret; a secret changed or deleted by hand is
// rewritten.
func TestRepositorySyncRerunAndChanges(t *testing.T) {
	r := newRig(t)
	ps := projects(30)
	res := r.mustRun(ps, nil)
	wantOutputs(t, res, map[string]string{"created": "30", "updated": "0", "unchanged": "0", "deleted": "0", "remaining": "0"})
	if res.writes != 60 {
		t.Fatalf("%d writes, want 60 (a secret and a fingerprint variable each)", res.writes)
	}
	for _, p := range ps {
		name := upperName(p.name) + "_DATABASE_URL"
		v, _, ok := r.gh.Secret(repo, name)
		if !ok || v != pooledURL(p.url) {
			t.Fatalf("%s: secret %s holds the wrong value (ok=%v)", p.id, name, ok)
		}
		if d := res.detail(t, p.id); d.Action != didCreate || d.Secret != name || d.Writes != 2 || d.UpdatedAt == nil {
			t.Fatalf("detail %+v", d)
		}
	}
	if n := len(r.gh.Variables(repo)); n != 30 {
		t.Fatalf("%d variables, want 30", n)
	}
	if c := r.gh.MaxConcurrentWrites(); c != 1 {
		t.Fatalf("%d writes at once, want 1", c)
	}

	res = r.mustRun(ps, nil)
	wantOutputs(t, res, map[string]string{"created": "0", "updated": "0", "unchanged": "30", "remaining": "0"})
	if res.writes != 0 || res.statuses()[fleet.UpToDate] != 30 {
		t.Fatalf("re-run: %d writes, statuses %v", res.writes, res.statuses())
	}

	// A password changes in one tenant.
	ps[7].url = strings.Replace(ps[7].url, "pw-0008-Secret", "rotated-password-8", 1)
	res = r.mustRun(ps, nil)
	wantOutputs(t, res, map[string]string{"created": "0", "updated": "1", "unchanged": "29"})
	writes := r.gh.Writes()
	writes = writes[len(writes)-res.writes:]
	if res.writes != 2 || !strings.HasSuffix(writes[0].Path, "/secrets/CUSTOMER_0008_DATABASE_URL") || !strings.HasSuffix(writes[1].Path, "/variables/PGFLEET_FP_CUSTOMER_0008_DATABASE_URL") {
		t.Fatalf("password change: %d writes %+v", res.writes, writes)
	}
	if v, _, _ := r.gh.Secret(repo, "CUSTOMER_0008_DATABASE_URL"); v != pooledURL(ps[7].url) {
		t.Fatal("the changed secret does not hold the new connection string")
	}
	if d := res.detail(t, ps[7].id); d.Action != didUpdate || d.Why != "connection string changed" {
		t.Fatalf("detail %+v", d)
	}

	// By hand: one secret changed, one deleted, one fingerprint variable deleted.
	r.gh.SetSecret(repo, "CUSTOMER_0002_DATABASE_URL", "postgres://someone:else@h/db", time.Now().Add(time.Hour))
	r.gh.DeleteSecret(repo, "CUSTOMER_0003_DATABASE_URL")
	r.gh.DeleteVariable(repo, "PGFLEET_FP_CUSTOMER_0004_DATABASE_URL")
	res = r.mustRun(ps, nil)
	wantOutputs(t, res, map[string]string{"created": "1", "updated": "2", "unchanged": "27"})
	for id, want := range map[string][2]string{
		ps[1].id: {didUpdate, "changed outside pgfleet"},
		ps[2].id: {didCreate, "deleted outside pgfleet"},
		ps[3].id: {didUpdate, "no fingerprint recorded"},
	} {
		if d := res.detail(t, id); d.Action != want[0] || d.Why != want[1] {
			t.Fatalf("%s: %+v, want %v", id, d, want)
		}
	}
	for _, p := range ps[1:4] {
		if v, _, _ := r.gh.Secret(repo, upperName(p.name)+"_DATABASE_URL"); v != pooledURL(p.url) {
			t.Fatalf("%s not rewritten", p.id)
		}
	}
	if res := r.mustRun(ps, nil); res.writes != 0 {
		t.Fatalf("after repairs: %d writes", res.writes)
	}

	// A new fingerprint key rewrites every secret once; pooled=false
	// writes the direct connection strings.
	res = r.mustRun(ps, map[string]string{"fingerprint-key": "a-new-key-for-fingerprints", "pooled": "false"})
	wantOutputs(t, res, map[string]string{"updated": "30"})
	if v, _, _ := r.gh.Secret(repo, "CUSTOMER_0001_DATABASE_URL"); v != ps[0].url {
		t.Fatal("pooled=false did not write the direct connection string")
	}
	if res := r.mustRun(ps, map[string]string{"fingerprint-key": "a-new-key-for-fingerprints", "pooled": "false"}); res.writes != 0 {
		t.Fatalf("after the key change: %d writes", res.writes)
	}
}

// More tenants than a repository holds: refused before anything is
// written, naming what fits and the projects beyond the limit.
func TestRepositoryLimitRefusedBeforeWriting(t *testing.T) {
	r := newRig(t)
	res := r.run(projects(150), nil)
	var ie *input.Error
	if !errors.As(res.err, &ie) || ie.Input != "secret-target" {
		t.Fatalf("error %v, want an input error on secret-target", res.err)
	}
	msg := res.err.Error()
	for _, want := range []string{"150 tenants need 150 more secrets in repository o/r", "GitHub allows 100", "so 100 more fit", "secret-target: environment", `"customer-0101" (proj-0101)`, "and 45 more"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if res.writes != 0 || len(r.gh.Writes()) != 0 {
		t.Fatalf("%d writes", res.writes)
	}
	if r.resolved != 0 {
		t.Fatalf("%d connection strings fetched for a plan refused on its names alone", r.resolved)
	}

	// Secrets already there count: 98 tenants and 3 other secrets is 101.
	for _, n := range []string{"A", "B", "C"} {
		r.gh.SetSecret(repo, n, "x", time.Time{})
	}
	res = r.run(projects(98), nil)
	if res.err == nil || !strings.Contains(res.err.Error(), "which holds 3 already") || !strings.Contains(res.err.Error(), "so 97 more fit") {
		t.Fatalf("98 tenants + 3 secrets: %v", res.err)
	}
	if len(r.gh.Writes()) != 0 {
		t.Fatal("something was written")
	}
	if res := r.mustRun(projects(97), nil); res.outputs["created"] != "97" {
		t.Fatalf("97 + 3: %v", res.outputs)
	}
}

// 150 tenants, one environment each: created with their secret; a re-run
// writes nothing; prune deletes the secret of a removed tenant and keeps
// its environment.
func TestEnvironments(t *testing.T) {
	r := newRig(t)
	ps := projects(150)
	in := map[string]string{"secret-target": "environment"}
	res := r.mustRun(ps, in)
	wantOutputs(t, res, map[string]string{"created": "150", "remaining": "0"})
	if res.writes != 450 {
		t.Fatalf("%d writes, want 450 (environment, secret, variable)", res.writes)
	}
	envs := r.gh.Environments("o", "r")
	if len(envs) != 150 {
		t.Fatalf("%d environments", len(envs))
	}
	for _, p := range ps {
		env := githubapi.Env("o", "r", "tenant-"+slug(p.name))
		if v, _, ok := r.gh.Secret(env, "DATABASE_URL"); !ok || v != pooledURL(p.url) {
			t.Fatalf("%s: wrong secret in its environment", p.id)
		}
	}
	d := res.detail(t, ps[0].id)
	if !d.EnvironmentCreated || d.Environment != "tenant-customer-0001" || d.Writes != 3 || len(d.Cells()) != 3 {
		t.Fatalf("detail %+v", d)
	}
	if len(r.gh.Secrets(repo)) != 0 {
		t.Fatal("repository secrets written for an environment target")
	}

	res = r.mustRun(ps, in)
	if res.writes != 0 || res.outputs["unchanged"] != "150" {
		t.Fatalf("re-run: %d writes, %v", res.writes, res.outputs)
	}
	t.Logf("150 environments, nothing changed: %d requests", res.requests)

	// Prune: one tenant gone. A secret of other naming in its environment,
	// and a hand-made environment, stay.
	gone := githubapi.Env("o", "r", "tenant-customer-0150")
	r.gh.SetSecret(gone, "OTHER_SECRET", "x", time.Time{})
	r.gh.AddEnvironment("o", "r", "production")
	r.gh.SetSecret(githubapi.Env("o", "r", "production"), "DATABASE_URL", "prod", time.Time{})
	in["prune"] = "true"
	res = r.mustRun(ps[:149], in)
	wantOutputs(t, res, map[string]string{"deleted": "1", "unchanged": "149"})
	if res.writes != 2 {
		t.Fatalf("prune: %d writes, want 2 (secret and variable)", res.writes)
	}
	if _, _, ok := r.gh.Secret(gone, "DATABASE_URL"); ok {
		t.Fatal("the removed tenant's secret is still there")
	}
	if _, _, ok := r.gh.Secret(gone, "OTHER_SECRET"); !ok {
		t.Fatal("prune deleted a secret of other naming")
	}
	if !slices.Contains(r.gh.Environments("o", "r"), "tenant-customer-0150") {
		t.Fatal("prune deleted the environment")
	}
	if _, _, ok := r.gh.Secret(githubapi.Env("o", "r", "production"), "DATABASE_URL"); !ok {
		t.Fatal("prune touched an environment the template does not produce")
	}
	secs := res.job.Sections(res.outcome.Results)
	if len(secs) != 2 || len(secs[1].Rows) != 1 || secs[1].Rows[0][0] != "DATABASE_URL" || secs[1].Rows[0][2] != `"customer-0150" (proj-0150)` || secs[1].Rows[0][3] != "deleted" {
		t.Fatalf("prune section %+v", secs)
	}
}

// Prune on a repository deletes exactly the removed tenant's secret (and
// its variable); a secret of other naming, or one pgfleet never wrote, stays.
func TestPruneRepository(t *testing.T) {
	r := newRig(t)
	ps := projects(5)
	r.mustRun(ps, nil)
	r.gh.SetSecret(repo, "UNRELATED", "x", time.Time{})
	r.gh.SetSecret(repo, "HANDMADE_DATABASE_URL", "x", time.Time{}) // matches the template, but pgfleet never wrote it
	res := r.mustRun(ps[:4], map[string]string{"prune": "true"})
	wantOutputs(t, res, map[string]string{"deleted": "1", "unchanged": "4", "remaining": "0"})
	var names []string
	for _, s := range r.gh.Secrets(repo) {
		names = append(names, s.Name)
	}
	want := []string{"CUSTOMER_0001_DATABASE_URL", "CUSTOMER_0002_DATABASE_URL", "CUSTOMER_0003_DATABASE_URL", "CUSTOMER_0004_DATABASE_URL", "HANDMADE_DATABASE_URL", "UNRELATED"}
	if !slices.Equal(names, want) {
		t.Fatalf("secrets after prune %v, want %v", names, want)
	}
	if _, ok := r.gh.Variable(repo, "PGFLEET_FP_CUSTOMER_0005_DATABASE_URL"); ok {
		t.Fatal("its fingerprint variable is still there")
	}
	if res := r.mustRun(ps[:4], map[string]string{"prune": "true"}); res.writes != 0 {
		t.Fatalf("second prune: %d writes", res.writes)
	}

	// Not with a selection: the rest would look gone.
	res = r.run(ps, map[string]string{"prune": "true"}, func(c *config.Config) { c.Selector.Shard = tenant.Shard{Index: 1, Count: 2} })
	var ie *input.Error
	if !errors.As(res.err, &ie) || ie.Input != "prune" {
		t.Fatalf("prune with shard: %v", res.err)
	}
}

// Prune deletes only what this configuration wrote: a second sync of the
// same fleet (direct connection strings, another template) into the same
// repository writes names the first template also matches
// (CUSTOMER_0005_DIRECT_DATABASE_URL is {{NAME}}_DATABASE_URL with NAME =
// CUSTOMER_0005_DIRECT), and survives the first's prune.
func TestPruneLeavesAnotherConfigurationsSecrets(t *testing.T) {
	r := newRig(t)
	ps := projects(3)
	r.mustRun(ps, nil)
	direct := map[string]string{"pooled": "false", "secret-name": "{{NAME}}_DIRECT_DATABASE_URL"}
	r.mustRun(ps, direct)
	res := r.mustRun(ps[:2], map[string]string{"prune": "true"})
	wantOutputs(t, res, map[string]string{"deleted": "1"})
	var names []string
	for _, s := range r.gh.Secrets(repo) {
		names = append(names, s.Name)
	}
	want := []string{"CUSTOMER_0001_DATABASE_URL", "CUSTOMER_0001_DIRECT_DATABASE_URL", "CUSTOMER_0002_DATABASE_URL", "CUSTOMER_0002_DIRECT_DATABASE_URL", "CUSTOMER_0003_DIRECT_DATABASE_URL"}
	if !slices.Equal(names, want) {
		t.Fatalf("secrets after prune %v, want %v", names, want)
	}
}

// Two projects whose names give the same secret name: refused, naming both.
func TestCollisionsAndInvalidNames(t *testing.T) {
	r := newRig(t)
	ps := projects(4)
	ps[1].name = "Acme Corp"
	ps[3].name = "acme-corp!"
	res := r.run(ps, nil)
	if res.err == nil || !strings.Contains(res.err.Error(), `projects "Acme Corp" (proj-0002) and "acme-corp!" (proj-0004) both map to secret ACME_CORP_DATABASE_URL`) || !strings.Contains(res.err.Error(), "{{id}}") {
		t.Fatalf("collision: %v", res.err)
	}
	res = r.run(ps, map[string]string{"secret-target": "environment"})
	if res.err == nil || !strings.Contains(res.err.Error(), `both map to environment "tenant-acme-corp"`) {
		t.Fatalf("environment collision: %v", res.err)
	}
	// With {{id}} they are told apart.
	if res := r.mustRun(ps, map[string]string{"secret-name": "{{NAME}}_{{id}}_DATABASE_URL"}); res.outputs["created"] != "4" {
		t.Fatalf("%v", res.outputs)
	}
	before := len(r.gh.Writes())

	ps = projects(5)
	ps[0].name = "123 Shop"
	ps[1].name = "GitHub"
	ps[2].name = "日本"
	res = r.run(ps, nil)
	msg := fmt.Sprint(res.err)
	for _, want := range []string{`"123 Shop" (proj-0001) -> "123_SHOP_DATABASE_URL"`, `"GitHub" (proj-0002) -> "GITHUB_DATABASE_URL"`, "TENANT_{{NAME}}_DATABASE_URL", `{{NAME}} comes out empty for these projects`, `"日本" (proj-0003)`} {
		if !strings.Contains(msg, want) {
			t.Errorf("invalid names: message lacks %q:\n%s", want, msg)
		}
	}
	if len(r.gh.Writes()) != before {
		t.Fatal("something was written")
	}
	res = r.mustRun(ps, map[string]string{"secret-name": "TENANT_{{NAME}}_{{id}}_DATABASE_URL"})
	if res.outputs["created"] != "5" {
		t.Fatalf("%v", res.outputs)
	}
}

// A dry run writes nothing, not even environments, and fills the outputs a
// real run would.
func TestDryRun(t *testing.T) {
	r := newRig(t)
	ps := projects(6)
	r.mustRun(ps[:3], map[string]string{"secret-target": "environment"})
	ps[0].url += "&changed=1"
	before := len(r.gh.Writes())
	res := r.mustRun(ps[1:], map[string]string{"secret-target": "environment", "dry-run": "true", "prune": "true"})
	wantOutputs(t, res, map[string]string{"created": "3", "updated": "0", "unchanged": "2", "deleted": "1", "remaining": "0"})
	if len(r.gh.Writes()) != before || len(r.gh.Environments("o", "r")) != 3 {
		t.Fatalf("a dry run wrote %d times", len(r.gh.Writes())-before)
	}
	d := res.detail(t, ps[5].id)
	if d.Action != wouldCreate || !d.EnvironmentCreated || d.Cells()[2] != "would create, with its environment" {
		t.Fatalf("dry-run detail %+v %q", d, d.Cells())
	}
	if !strings.Contains(res.job.Describe(), "dry run: nothing will be written") {
		t.Fatal(res.job.Describe())
	}
	// And the real run does what the dry run said.
	res = r.mustRun(ps[1:], map[string]string{"secret-target": "environment", "prune": "true"})
	wantOutputs(t, res, map[string]string{"created": "3", "updated": "0", "unchanged": "2", "deleted": "1", "remaining": "0"})
}

// GitHub's secondary rate limits in the middle of the writes are waited
// out: everything is written, nothing fails.
func TestRateLimitsWaitedOut(t *testing.T) {
	r := newRig(t)
	ps := projects(8)
	r.mustRun(ps[:2], nil)
	r.gh.RateLimitWrites(1, githubapi.RateLimit{Status: http.StatusForbidden, Wait: time.Second})
	r.gh.RateLimitWrites(1, githubapi.RateLimit{Status: http.StatusTooManyRequests, Wait: time.Second})
	r.gh.RateLimitWrites(1, githubapi.RateLimit{Wait: time.Second, Reset: true})
	began := time.Now()
	res := r.mustRun(ps, nil)
	wantOutputs(t, res, map[string]string{"created": "6", "unchanged": "2", "remaining": "0"})
	if res.statuses()[fleet.Failed] != 0 {
		t.Fatalf("statuses %v", res.statuses())
	}
	if el := time.Since(began); el < 2*time.Second {
		t.Fatalf("three rate limits waited out in %s", el)
	}
	limited := 0
	for _, w := range r.gh.Writes() {
		if w.Status == 403 || w.Status == 429 {
			limited++
		}
	}
	if limited != 3 || res.writes != 12+3 {
		t.Fatalf("%d rate-limited answers, %d writes", limited, res.writes)
	}
	if len(r.warnings) < 3 || !strings.Contains(strings.Join(r.warnings, "\n"), "rate limit: waiting") {
		t.Fatalf("waits not announced: %q", r.warnings)
	}
	for _, p := range ps {
		if v, _, _ := r.gh.Secret(repo, upperName(p.name)+"_DATABASE_URL"); v != pooledURL(p.url) {
			t.Fatalf("%s not written", p.id)
		}
	}
	if sec := res.job.Sections(res.outcome.Results)[0]; !strings.Contains(sec.Note, "3 rate limits from GitHub waited out") {
		t.Fatalf("note %q", sec.Note)
	}
}

// max-duration runs out half way: the rest is left (skipped, not failed),
// remaining says how many, and the next run finishes.
func TestTimeBudget(t *testing.T) {
	r := newRig(t)
	ps := projects(20)
	in := map[string]string{"max-duration": "1s", "(write-gap)": "50ms"}
	res := r.mustRun(ps, in, func(c *config.Config) { c.Concurrency = 2 })
	st := res.statuses()
	left := st[fleet.Skipped]
	if st[fleet.Failed] != 0 || left == 0 || left == 20 || st[fleet.Succeeded]+left != 20 {
		t.Fatalf("statuses %v", st)
	}
	if res.outputs["remaining"] != fmt.Sprint(left) {
		t.Fatalf("remaining %q, %d left", res.outputs["remaining"], left)
	}
	line := fmt.Sprintf("%d tenants left: run again to continue", left)
	if !slices.Contains(r.warnings, line) {
		t.Fatalf("warnings %q lack %q", r.warnings, line)
	}
	var leftIDs []string
	for _, x := range res.outcome.Results {
		if x.Status == fleet.Skipped {
			if d := x.Detail.(*Detail); d.Action != didLeave || !strings.Contains(d.Cells()[1], "left for the next run") {
				t.Fatalf("left tenant's detail %+v", d)
			}
			leftIDs = append(leftIDs, x.Tenant.ID)
		}
	}
	if sec := res.job.Sections(res.outcome.Results)[0]; !strings.Contains(sec.Note, "max-duration (1s) was spent") {
		t.Fatalf("note %q", sec.Note)
	}
	t.Logf("budget 1s at 50ms a write: %d of 20 left", left)

	res = r.mustRun(ps, map[string]string{"(write-gap)": "0"})
	wantOutputs(t, res, map[string]string{"remaining": "0"})
	if n, _ := strconv.Atoi(res.outputs["created"]); n == 0 || n > left+1 {
		t.Fatalf("second run: %v, %d were left", res.outputs, left)
	}
	for _, id := range leftIDs {
		if a := res.detail(t, id).Action; a != didCreate && a != didUpdate {
			t.Fatalf("%s: %s on the second run", id, a)
		}
	}
	for _, p := range ps {
		if v, _, _ := r.gh.Secret(repo, upperName(p.name)+"_DATABASE_URL"); v != pooledURL(p.url) {
			t.Fatalf("%s not written after the second run", p.id)
		}
	}
	if res := r.mustRun(ps, nil); res.writes != 0 {
		t.Fatalf("third run: %d writes", res.writes)
	}
}

// An organization target: written with the visibility asked for; a
// repository that would see more than 100 organization secrets is refused.
func TestOrganization(t *testing.T) {
	r := newRig(t)
	r.gh.AddOrganization("o")
	org := githubapi.Org("o")
	ps := projects(4)
	in := map[string]string{"secret-target": "organization"}
	res := r.mustRun(ps, in)
	wantOutputs(t, res, map[string]string{"created": "4"})
	id := r.gh.AddRepository("o", "r")
	for _, s := range r.gh.Secrets(org) {
		if s.Visibility != "selected" || !slices.Equal(s.SelectedRepositoryIDs, []int64{id}) || s.Value != pooledURL(ps[0].url) && s.Name == "CUSTOMER_0001_DATABASE_URL" {
			t.Fatalf("org secret %s: visibility %s %v", s.Name, s.Visibility, s.SelectedRepositoryIDs)
		}
	}
	if res := r.mustRun(ps, in); res.writes != 0 {
		t.Fatalf("re-run: %d writes", res.writes)
	}
	// Another visibility rewrites them.
	in["secret-visibility"] = "private"
	if res := r.mustRun(ps, in); res.outputs["updated"] != "4" {
		t.Fatalf("visibility change: %v", res.outputs)
	}

	// 97 visible already + 4 = 101: refused whatever the visibility.
	for i := range 97 {
		r.gh.SetSecret(org, fmt.Sprintf("OTHER_%d", i), "x", time.Time{})
	}
	before := len(r.gh.Writes())
	res = r.run(append(ps, projects(5)[4]), in)
	if res.err == nil || !strings.Contains(res.err.Error(), "organization secrets visible to o/r") || !strings.Contains(res.err.Error(), "secret-target: environment") {
		t.Fatalf("visible limit: %v", res.err)
	}
	if len(r.gh.Writes()) != before {
		t.Fatal("something was written")
	}
}

// A tenant whose connection string cannot be had fails; the others are
// written; with database-urls a fingerprint-key is required.
func TestResolveFailureAndInputs(t *testing.T) {
	r := newRig(t)
	ps := projects(3)
	ps[1].resolveErr = errors.New("neon: 503 Service Unavailable")
	res := r.mustRun(ps, nil)
	if st := res.statuses(); st[fleet.Failed] != 1 || st[fleet.Succeeded] != 2 {
		t.Fatalf("statuses %v", st)
	}
	wantOutputs(t, res, map[string]string{"created": "2", "remaining": "1"})

	for _, c := range []struct {
		in    map[string]string
		cfg   func(*config.Config)
		input string
	}{
		{map[string]string{"github-token": ""}, nil, "github-token"},
		{map[string]string{"repository": "just-a-name"}, nil, "repository"},
		{map[string]string{"secret-target": "everywhere"}, nil, "secret-target"},
		{map[string]string{"secret-name": "DATABASE_URL"}, nil, "secret-name"},
		{map[string]string{"secret-target": "environment", "environment-name": "prod"}, nil, "environment-name"},
		{map[string]string{"secret-name": "{{nope}}"}, nil, "secret-name"},
		{map[string]string{"max-duration": "forever"}, nil, "max-duration"},
		{nil, func(c *config.Config) { c.DatabaseURLs = []config.NamedURL{{Name: "a", URL: "postgres://u:p@h/db"}} }, "fingerprint-key"},
		{map[string]string{"github-token": "wrong-token"}, nil, "github-token"},
		{map[string]string{"repository": "o/missing"}, nil, "repository"},
	} {
		var cfg []func(*config.Config)
		if c.cfg != nil {
			cfg = append(cfg, c.cfg)
		}
		res := r.run(ps, c.in, cfg...)
		var ie *input.Error
		if !errors.As(res.err, &ie) || ie.Input != c.input {
			t.Errorf("%v: error %v, want one on %s", c.in, res.err, c.input)
		}
	}
}

// Nothing the mode reports (details, sections, description, warnings,
// errors) carries a connection string, a password, the token, a fingerprint
// or the key; the mode registers every value it writes.
func TestNothingSecretReported(t *testing.T) {
	r := newRig(t)
	ps := projects(5)
	ps[2].resolveErr = errors.New("resolve failed")
	in := map[string]string{"fingerprint-key": "fp-key-0123456789", "secret-target": "environment"}
	r.mustRun(ps[:4], in)
	ps[0].url += "&x=1"
	r.gh.RateLimitWrites(1, githubapi.RateLimit{Wait: time.Second})
	res := r.mustRun(ps, map[string]string{"fingerprint-key": "fp-key-0123456789", "secret-target": "environment", "prune": "true"})
	var text strings.Builder
	text.WriteString(res.job.Describe())
	for _, x := range res.outcome.Results {
		b, _ := json.Marshal(x.Detail)
		text.Write(b)
		if x.Detail != nil {
			text.WriteString(strings.Join(x.Detail.Cells(), " "))
		}
		if x.Err != nil {
			text.WriteString(x.Err.Error())
		}
	}
	for _, s := range res.job.Sections(res.outcome.Results) {
		fmt.Fprint(&text, s)
	}
	fmt.Fprint(&text, res.outputs, r.warnings)
	all := text.String()
	forbidden := []string{"ghp-test-token-123456", "fp-key-0123456789", r.neonKey}
	for _, p := range ps {
		forbidden = append(forbidden, p.url, pooledURL(p.url), tenant.Password(p.url))
	}
	for _, v := range r.gh.Variables(githubapi.Env("o", "r", "tenant-customer-0001")) {
		sum, _, _, _ := parseRecord(v.Value)
		forbidden = append(forbidden, sum)
	}
	for _, f := range forbidden {
		if f != "" && strings.Contains(all, f) {
			t.Fatalf("%q appears in what the mode reports", f)
		}
	}
	for _, p := range ps {
		if p.resolveErr == nil && (!slices.Contains(r.secrets, pooledURL(p.url)) || !slices.Contains(r.secrets, tenant.Password(p.url))) {
			t.Fatalf("%s: its connection string was not registered as a secret", p.id)
		}
	}
	for _, s := range []string{"ghp-test-token-123456", "fp-key-0123456789"} {
		if !slices.Contains(r.secrets, s) {
			t.Fatalf("%q not registered", s)
		}
	}
}

var _ mode.SourceOverride = (*Job)(nil)

// Describe tells the plan and whether max-duration allows it; a
// concurrency that would make tenants queue past tenant-timeout is warned
// about before any write.
func TestDescribeAndQueueWarning(t *testing.T) {
	r := newRig(t)
	res := r.mustRun(projects(20), map[string]string{"(write-gap)": "100ms", "max-duration": "1h", "dry-run": "true"}, func(c *config.Config) {
		c.Concurrency, c.TenantTimeout = 50, time.Second
	})
	if d := res.job.Describe(); !strings.Contains(d, "20 tenants' connection strings to repository o/r secret {{NAME}}_DATABASE_URL; plan: 20 to create, 0 to update, 0 unchanged; 40 writes needed; dry run") {
		t.Fatalf("describe: %s", d)
	}
	if len(r.warnings) != 0 {
		t.Fatalf("a dry run warned: %q", r.warnings)
	}
	res = r.run(projects(20), map[string]string{"(write-gap)": "100ms", "max-duration": "1s"}, func(c *config.Config) {
		c.Concurrency, c.TenantTimeout = 50, time.Second
	})
	if res.job == nil || !strings.Contains(strings.Join(r.warnings, "\n"), "a tenant may wait about 4s for its turn to write, close to or beyond tenant-timeout 1s") {
		t.Fatalf("warnings %q", r.warnings)
	}
	if d := res.job.Describe(); !strings.Contains(d, "40 writes, one at a time, 100ms apart (about 4s); that is more than the") {
		t.Fatalf("describe: %s", d)
	}
}

// Without the test override, writes are GitHub-paced: 750 ms apart for a
// plan of at most 450 writes, spread over the hour beyond.
func TestPaceChosenFromThePlan(t *testing.T) {
	r := newRig(t)
	in := map[string]string{"(write-gap)": "", "dry-run": "true", "secret-target": "environment"}
	if res := r.mustRun(projects(150), in); res.job.gap != 750*time.Millisecond || res.job.plan.writes != 450 {
		t.Fatalf("150 environments: gap %s for %d writes", res.job.gap, res.job.plan.writes)
	}
	if res := r.mustRun(projects(151), in); res.job.gap != 7500*time.Millisecond {
		t.Fatalf("151 environments: gap %s", res.job.gap)
	}
}
