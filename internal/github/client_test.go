package github_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/testenv/githubapi"
)

const token = "ghs_clienttesttoken0123456789"

var _ github.Clock = (*githubapi.FakeClock)(nil)

type fixture struct {
	srv    *githubapi.Server
	client *github.Client
	clock  *githubapi.FakeClock

	mu    sync.Mutex
	waits []github.Wait
}

// setup starts an emulator holding the repository acme/app, its
// environment tenant-a and the organization acme, and a client for it on
// the emulator's fake clock.
func setup(t *testing.T, cfg githubapi.Config, o github.Options) *fixture {
	t.Helper()
	f := &fixture{clock: githubapi.NewFakeClock(time.Time{})}
	cfg.Token = token
	cfg.Now = f.clock.Now
	f.srv = githubapi.Start(cfg)
	t.Cleanup(f.srv.Close)
	f.srv.AddRepository("acme", "app")
	f.srv.AddEnvironment("acme", "app", "tenant-a")
	f.srv.AddOrganization("acme")
	o.BaseURL = f.srv.URL()
	if o.Token == "" {
		o.Token = token
	}
	o.Clock = f.clock
	o.OnWait = func(w github.Wait) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.waits = append(f.waits, w)
	}
	c, err := github.New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.client = c
	return f
}

func (f *fixture) reported() []github.Wait {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]github.Wait(nil), f.waits...)
}

var (
	repo = github.RepoTarget("acme", "app")
	env  = github.EnvTarget("acme", "app", "tenant-a")
	org  = github.OrgTarget("acme", github.VisibilityPrivate)
)

// emulated is the emulator's name for a client target.
func emulated(t github.Target) githubapi.Target {
	switch t.Kind {
	case github.KindEnvironment:
		return githubapi.Env(t.Owner, t.Repo, t.Environment)
	case github.KindOrganization:
		return githubapi.Org(t.Org)
	}
	return githubapi.Repo(t.Owner, t.Repo)
}

func TestPutSecretEveryTarget(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	for _, target := range []github.Target{repo, env, org} {
		t.Run(string(target.Kind), func(t *testing.T) {
			value := "postgres://owner:s3cr3t-" + string(target.Kind) + "@ep-1.neon.tech/neondb?sslmode=require"
			res, err := f.client.PutSecret(ctx, target, "ACME_DATABASE_URL", value)
			if err != nil {
				t.Fatal(err)
			}
			got, updated, ok := f.srv.Secret(emulated(target), "ACME_DATABASE_URL")
			if !ok || got != value {
				t.Fatalf("decrypted %q (stored %v), want %q", got, ok, value)
			}
			if !res.Created || res.Secret.Name != "ACME_DATABASE_URL" || !res.Secret.UpdatedAt.Equal(updated) {
				t.Fatalf("put result %+v, emulator updated_at %v", res, updated)
			}

			f.clock.Advance(time.Hour)
			res2, err := f.client.PutSecret(ctx, target, "ACME_DATABASE_URL", value+"&x=1")
			if err != nil {
				t.Fatal(err)
			}
			if got, _, _ := f.srv.Secret(emulated(target), "ACME_DATABASE_URL"); got != value+"&x=1" {
				t.Fatalf("after update %q", got)
			}
			if res2.Created || !res2.Secret.UpdatedAt.After(res.Secret.UpdatedAt) || !res2.Secret.CreatedAt.Equal(res.Secret.CreatedAt) {
				t.Fatalf("update result %+v after %+v", res2, res)
			}
			if target.Kind == github.KindOrganization && res2.Secret.Visibility != github.VisibilityPrivate {
				t.Errorf("visibility %q", res2.Secret.Visibility)
			}

			list, err := f.client.ListSecrets(ctx, target)
			if err != nil || len(list) != 1 || list[0].Name != "ACME_DATABASE_URL" || !list[0].UpdatedAt.Equal(res2.Secret.UpdatedAt) {
				t.Fatalf("list %+v %v", list, err)
			}
			if err := f.client.DeleteSecret(ctx, target, "ACME_DATABASE_URL"); err != nil {
				t.Fatal(err)
			}
			if _, _, ok := f.srv.Secret(emulated(target), "ACME_DATABASE_URL"); ok {
				t.Fatal("still there after delete")
			}
			if _, err := f.client.GetSecret(ctx, target, "ACME_DATABASE_URL"); !github.IsNotFound(err) {
				t.Fatalf("get deleted: %v", err)
			}
			if err := f.client.DeleteSecret(ctx, target, "ACME_DATABASE_URL"); !github.IsNotFound(err) {
				t.Fatalf("delete deleted: %v", err)
			}
		})
	}
	for _, r := range f.srv.Requests() {
		if strings.HasPrefix(r.Path, "/repositories/") {
			t.Errorf("request to a legacy route: %s %s", r.Method, r.Path)
		}
	}
}

func TestOrganizationSecretSelectedRepository(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	id, err := f.client.RepositoryID(ctx, "acme", "app")
	if err != nil || id != f.srv.AddRepository("acme", "app") {
		t.Fatalf("repository id %d, %v", id, err)
	}
	target := github.OrgTarget("acme", github.VisibilitySelected, id)
	if _, err := f.client.PutSecret(ctx, target, "T_DATABASE_URL", "v"); err != nil {
		t.Fatal(err)
	}
	s := f.srv.Secrets(githubapi.Org("acme"))
	if len(s) != 1 || s[0].Visibility != "selected" || len(s[0].SelectedRepositoryIDs) != 1 || s[0].SelectedRepositoryIDs[0] != id {
		t.Fatalf("stored %+v", s)
	}
	if err := f.client.CreateVariable(ctx, target, "T_FP", "abc"); err != nil {
		t.Fatal(err)
	}
	if v := f.srv.Variables(githubapi.Org("acme")); len(v) != 1 || v[0].Visibility != "selected" || v[0].SelectedRepositoryIDs[0] != id {
		t.Fatalf("variable %+v", v)
	}

	// What the repository sees: its selected secret and the private and
	// all ones, not a secret selected for another repository.
	other := f.srv.AddRepository("acme", "other")
	for name, tg := range map[string]github.Target{
		"P_DATABASE_URL": github.OrgTarget("acme", github.VisibilityPrivate),
		"A_DATABASE_URL": github.OrgTarget("acme", github.VisibilityAll),
		"O_DATABASE_URL": github.OrgTarget("acme", github.VisibilitySelected, other),
	} {
		if _, err := f.client.PutSecret(ctx, tg, name, "v"); err != nil {
			t.Fatal(err)
		}
	}
	visible, err := f.client.ListRepoOrgSecrets(ctx, "acme", "app")
	var names []string
	for _, s := range visible {
		names = append(names, s.Name)
	}
	if err != nil || strings.Join(names, " ") != "A_DATABASE_URL P_DATABASE_URL T_DATABASE_URL" {
		t.Fatalf("visible to acme/app: %v %v", names, err)
	}
}

func TestListSecretsPagesOrganization(t *testing.T) {
	f := setup(t, githubapi.Config{}, github.Options{})
	for i := range 250 {
		f.srv.SetSecret(githubapi.Org("acme"), fmt.Sprintf("T%04d_DATABASE_URL", i), "v", time.Time{})
	}
	f.srv.ResetRequests()
	list, err := f.client.ListSecrets(context.Background(), org)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 250 || list[0].Name != "T0000_DATABASE_URL" || list[249].Name != "T0249_DATABASE_URL" {
		t.Fatalf("%d secrets", len(list))
	}
	var queries []string
	for _, r := range f.srv.Requests() {
		queries = append(queries, r.Query)
	}
	if want := "per_page=100&page=1 per_page=100&page=2 per_page=100&page=3"; strings.Join(queries, " ") != want {
		t.Errorf("queries %q, want %q", queries, want)
	}
}

func TestEnvironments(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	if _, err := f.client.GetEnvironment(ctx, "acme", "app", "tenant-b"); !github.IsNotFound(err) {
		t.Fatalf("missing environment: %v", err)
	}
	e, err := f.client.CreateEnvironment(ctx, "acme", "app", "tenant-b.eu_1")
	if err != nil || e.Name != "tenant-b.eu_1" || e.ID == 0 {
		t.Fatalf("create: %+v %v", e, err)
	}
	if g, err := f.client.GetEnvironment(ctx, "acme", "app", "tenant-b.eu_1"); err != nil || g.ID != e.ID {
		t.Fatalf("get: %+v %v", g, err)
	}
	// Secrets of the new environment, by the documented route.
	if _, err := f.client.PutSecret(ctx, github.EnvTarget("acme", "app", "tenant-b.eu_1"), "DATABASE_URL", "v"); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		f.srv.AddEnvironment("acme", "app", fmt.Sprintf("tenant-%03d", i))
	}
	list, err := f.client.ListEnvironments(ctx, "acme", "app")
	if err != nil || len(list) != 152 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	if _, err := f.client.PutSecret(ctx, github.EnvTarget("acme", "app", "tenant-zzz"), "DATABASE_URL", "v"); !github.IsNotFound(err) {
		t.Fatalf("secret of a missing environment: %v", err)
	}
}

func TestVariablesEveryTarget(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	for _, target := range []github.Target{repo, env, org} {
		t.Run(string(target.Kind), func(t *testing.T) {
			if err := f.client.CreateVariable(ctx, target, "ACME_DATABASE_URL_FP", "hmac1"); err != nil {
				t.Fatal(err)
			}
			if err := f.client.CreateVariable(ctx, target, "ACME_DATABASE_URL_FP", "hmac1"); github.StatusOf(err) != http.StatusConflict {
				t.Fatalf("create existing: %v", err)
			}
			if err := f.client.UpdateVariable(ctx, target, "ACME_DATABASE_URL_FP", "hmac2"); err != nil {
				t.Fatal(err)
			}
			v, err := f.client.GetVariable(ctx, target, "ACME_DATABASE_URL_FP")
			if err != nil || v.Value != "hmac2" || v.UpdatedAt.IsZero() {
				t.Fatalf("get %+v %v", v, err)
			}
			for i := range 40 {
				f.srv.SetVariable(emulated(target), fmt.Sprintf("V%02d", i), "x")
			}
			list, err := f.client.ListVariables(ctx, target)
			if err != nil || len(list) != 41 {
				t.Fatalf("list: %d %v", len(list), err)
			}
			if err := f.client.DeleteVariable(ctx, target, "ACME_DATABASE_URL_FP"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.client.GetVariable(ctx, target, "ACME_DATABASE_URL_FP"); !github.IsNotFound(err) {
				t.Fatalf("get deleted: %v", err)
			}
			if err := f.client.UpdateVariable(ctx, target, "ACME_DATABASE_URL_FP", "x"); !github.IsNotFound(err) {
				t.Fatalf("update deleted: %v", err)
			}
		})
	}
}

func TestLimitsRefused(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	for _, target := range []github.Target{repo, env, org} {
		for i := range target.MaxSecrets() {
			f.srv.SetSecret(emulated(target), fmt.Sprintf("S%04d", i), "v", time.Time{})
		}
		value := "postgres://u:hunter2-unique@h/db"
		_, err := f.client.PutSecret(ctx, target, "ONE_TOO_MANY_DATABASE_URL", value)
		var e *github.Error
		if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Name != "ONE_TOO_MANY_DATABASE_URL" || e.Op != "put secret" {
			t.Fatalf("%s: %#v", target, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "ONE_TOO_MANY_DATABASE_URL") || !strings.Contains(msg, target.String()) || !strings.Contains(msg, "maximum") || strings.Contains(msg, "hunter2") {
			t.Errorf("%s: %s", target, msg)
		}
		if _, ok := f.srv.Variable(emulated(target), "X"); ok {
			t.Fatal("impossible")
		}
	}
}

func TestRefusedBeforeSending(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	for _, name := range []string{"", "1X", "GITHUB_X", "github_x", "A-B", "A/B", "A B"} {
		if _, err := f.client.PutSecret(ctx, repo, name, "v"); !errors.Is(err, github.ErrInvalidName) || github.StatusOf(err) != 0 {
			t.Errorf("name %q: %v", name, err)
		}
	}
	value := strings.Repeat("p", github.MaxSecretValueSize+1)
	_, err := f.client.PutSecret(ctx, repo, "BIG", value)
	if !errors.Is(err, github.ErrTooLarge) || strings.Contains(err.Error(), "ppp") {
		t.Errorf("too large: %v", err)
	}
	if err := f.client.CreateVariable(ctx, repo, "BIG", strings.Repeat("p", github.MaxVariableSize+1)); !errors.Is(err, github.ErrTooLarge) {
		t.Errorf("variable too large: %v", err)
	}
	for _, target := range []github.Target{
		github.EnvTarget("acme", "app", ".."),
		github.EnvTarget("acme", "app", "a/b"),
		github.RepoTarget("acme", "../orgs"),
		github.OrgTarget("acme", "public"),
		github.OrgTarget("acme", github.VisibilityAll, 1),
	} {
		if _, err := f.client.ListSecrets(ctx, target); err == nil {
			t.Errorf("%+v accepted", target)
		}
	}
	if n := len(f.srv.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	if _, err := f.client.PutSecret(ctx, repo, "FITS", strings.Repeat("p", github.MaxSecretValueSize)); err != nil {
		t.Errorf("the largest value that fits: %v", err)
	}
}

func TestSecondaryRateLimitsWaitedOut(t *testing.T) {
	for _, tc := range []struct {
		name     string
		limit    githubapi.RateLimit
		wantWait time.Duration
		reason   string
	}{
		{"403 retry-after", githubapi.RateLimit{Status: 403, Wait: 7 * time.Second}, 7 * time.Second, "secondary rate limit"},
		{"429 retry-after", githubapi.RateLimit{Status: 429, Wait: 2 * time.Second}, 2 * time.Second, "secondary rate limit"},
		{"403 x-ratelimit-reset", githubapi.RateLimit{Status: 403, Reset: true, Wait: 30 * time.Second}, 31 * time.Second, "rate limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := setup(t, githubapi.Config{}, github.Options{})
			f.srv.RateLimitWrites(2, tc.limit)
			if _, err := f.client.PutSecret(ctx, repo, "A_DATABASE_URL", "v1"); err != nil {
				t.Fatal(err)
			}
			if v, _, _ := f.srv.Secret(githubapi.Repo("acme", "app"), "A_DATABASE_URL"); v != "v1" {
				t.Fatalf("stored %q", v)
			}
			w := f.srv.Writes()
			if len(w) != 3 || w[0].Status != tc.limit.Status || w[1].Status != tc.limit.Status || w[2].Status != 201 {
				t.Fatalf("writes %+v", w)
			}
			waits := f.reported()
			if len(waits) != 2 {
				t.Fatalf("reported waits %+v", waits)
			}
			for i, wt := range waits {
				if wt.Duration != tc.wantWait || wt.Status != tc.limit.Status || wt.Reason != tc.reason || wt.Attempt != i+1 ||
					wt.Op != "put secret A_DATABASE_URL in repository acme/app" {
					t.Errorf("wait %d: %+v", i, wt)
				}
			}
			// The retry went out exactly when GitHub said it could.
			if gap := w[1].Time.Sub(w[0].Time); gap != tc.wantWait {
				t.Errorf("retried after %v, want %v", gap, tc.wantWait)
			}
			if s := f.client.Stats(); s.RateLimited != 2 || s.Writes != 3 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestRateLimitBlocksReadsToo(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	f.srv.RateLimitWrites(1, githubapi.RateLimit{Wait: time.Minute})
	if err := f.client.CreateVariable(ctx, repo, "A", "1"); err != nil {
		t.Fatal(err)
	}
	var create, list time.Time
	if _, err := f.client.ListVariables(ctx, repo); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.srv.Requests() {
		switch {
		case r.Method == "POST" && r.Status == 201:
			create = r.Time
		case r.Method == "GET":
			list = r.Time
		}
	}
	if list.Before(create) {
		t.Errorf("a read went out during the rate limit")
	}
}

func TestRateLimitGivenUp(t *testing.T) {
	f := setup(t, githubapi.Config{}, github.Options{MaxRateLimitRetries: 2})
	f.srv.RateLimitWrites(5, githubapi.RateLimit{Status: 429})
	err := f.client.DeleteSecret(context.Background(), repo, "X")
	var e *github.Error
	if !errors.As(err, &e) || e.Status != 429 || e.Name != "X" {
		t.Fatalf("%v", err)
	}
	if n := len(f.srv.Writes()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	if e.RetryAfter != time.Second || !strings.Contains(e.Error(), "rate limited") {
		t.Errorf("retry after %v: %s", e.RetryAfter, e)
	}
	// The next request waits for the limit to pass; it does not fail.
	f.srv.ResetRequests()
	if err := f.client.CreateVariable(context.Background(), repo, "A", "1"); err != nil {
		t.Fatal(err)
	}
}

func TestServerErrorsRetried(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, `{"message":"Server Error"}`)
			return
		}
		fmt.Fprint(w, `{"id": 42, "name": "app"}`)
	}))
	defer srv.Close()
	clock := githubapi.NewFakeClock(time.Time{})
	var waits []github.Wait
	c, err := github.New(github.Options{BaseURL: srv.URL, Token: token, Clock: clock, OnWait: func(w github.Wait) { waits = append(waits, w) }})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.RepositoryID(context.Background(), "acme", "app")
	if err != nil || id != 42 {
		t.Fatalf("%d %v", id, err)
	}
	if len(waits) != 2 || waits[0].Reason != "server error" || waits[0].Duration != time.Second || waits[1].Duration != 2*time.Second {
		t.Errorf("waits %+v", waits)
	}
}

func TestWaitPastDeadlineRefused(t *testing.T) {
	f := setup(t, githubapi.Config{}, github.Options{})
	f.srv.RateLimitWrites(1, githubapi.RateLimit{Wait: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := f.client.PutSecret(ctx, repo, "A_DATABASE_URL", "v")
	var w *github.WaitError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &w) || github.StatusOf(err) != 403 || w.Wait != time.Hour {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(err.Error(), "A_DATABASE_URL") || !strings.Contains(err.Error(), "1h0m0s") {
		t.Errorf("%s", err)
	}
	if len(f.clock.Sleeps()) != 0 {
		t.Errorf("slept %v", f.clock.Sleeps())
	}
}

func TestCancelledWhileWaiting(t *testing.T) {
	f := setup(t, githubapi.Config{}, github.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	f.srv.RateLimitWrites(1, githubapi.RateLimit{})
	cancel()
	if err := f.client.CreateVariable(ctx, repo, "A", "1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
}

func TestWritesSerializedAndPaced(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{Latency: 2 * time.Millisecond, EnforceWriteLimits: true}, github.Options{})
	const n = 120 // more than GitHub allows in a minute
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.client.CreateVariable(ctx, repo, fmt.Sprintf("T%03d_FP", i), "x")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	w := f.srv.Writes()
	if len(w) != n {
		t.Fatalf("%d writes, want %d (the emulator refused some)", len(w), n)
	}
	if c := f.srv.MaxConcurrentWrites(); c != 1 {
		t.Errorf("%d writes at once", c)
	}
	for i := 1; i < len(w); i++ {
		if gap := w[i].Time.Sub(w[i-1].Time); gap < github.DefaultWriteGap {
			t.Errorf("writes %d and %d %v apart", i-1, i, gap)
		}
	}
	if total := w[n-1].Time.Sub(w[0].Time); total != (n-1)*github.DefaultWriteGap {
		t.Errorf("first to last write %v, want %v", total, (n-1)*github.DefaultWriteGap)
	}
	if len(f.reported()) != 0 {
		t.Errorf("routine gaps reported: %+v", f.reported())
	}
	if s := f.client.Stats(); s.Writes != n || s.RateLimited != 0 || s.Waited != (n-1)*github.DefaultWriteGap {
		t.Errorf("stats %+v", s)
	}
}

func TestHourlyWriteBudget(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{WritesPerHour: 5, WriteGap: time.Second})
	for i := range 7 {
		if err := f.client.CreateVariable(ctx, repo, fmt.Sprintf("V%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	w := f.srv.Writes()
	if got := w[5].Time.Sub(w[0].Time); got != time.Hour {
		t.Errorf("write 6 went out %v after write 1, want 1h", got)
	}
	if got := w[6].Time.Sub(w[1].Time); got != time.Hour {
		t.Errorf("write 7 went out %v after write 2, want 1h", got)
	}
	// Write 7 only had to keep the gap after write 6: that is not reported.
	waits := f.reported()
	if len(waits) != 1 || waits[0].Reason != "hourly write budget" || waits[0].Duration != time.Hour-4*time.Second {
		t.Errorf("reported %+v", waits)
	}
	for i := 7; i < 10; i++ {
		if err := f.client.CreateVariable(ctx, repo, fmt.Sprintf("V%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	// The budget is spent again; a wait that would outlast the deadline
	// stops the run at once.
	short, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	sleeps := len(f.clock.Sleeps())
	err := f.client.CreateVariable(short, repo, "V10", "x")
	var we *github.WaitError
	if !errors.As(err, &we) || we.Reason != "hourly write budget" || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v", err)
	}
	if len(f.clock.Sleeps()) != sleeps {
		t.Errorf("slept before giving up")
	}
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	if _, err := f.client.PutSecret(ctx, env, "DATABASE_URL", "one"); err != nil {
		t.Fatal(err)
	}
	f.srv.RotateKey(githubapi.Env("acme", "app", "tenant-a"))
	if _, err := f.client.PutSecret(ctx, env, "DATABASE_URL", "two"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := f.srv.Secret(githubapi.Env("acme", "app", "tenant-a"), "DATABASE_URL"); v != "two" {
		t.Fatalf("stored %q", v)
	}
}

func TestPublicKeyCached(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{}, github.Options{})
	for i := range 3 {
		if _, err := f.client.PutSecret(ctx, env, fmt.Sprintf("S%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, r := range f.srv.Requests() {
		if strings.HasSuffix(r.Path, "/public-key") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("public key fetched %d times", n)
	}
}

func TestErrorsHoldNoCredentials(t *testing.T) {
	ctx := context.Background()
	const value = "postgres://owner:Pa55-very-secret@ep-x.neon.tech/neondb"
	var errs []error

	f := setup(t, githubapi.Config{}, github.Options{MaxRateLimitRetries: 1})
	for i := range github.MaxRepositorySecrets {
		f.srv.SetSecret(githubapi.Repo("acme", "app"), fmt.Sprintf("S%03d", i), "v", time.Time{})
	}
	_, err := f.client.PutSecret(ctx, repo, "FULL", value)
	errs = append(errs, err)
	_, err = f.client.PutSecret(ctx, repo, "BIG", value+strings.Repeat("x", github.MaxSecretValueSize))
	errs = append(errs, err)
	f.srv.RateLimitWrites(2, githubapi.RateLimit{})
	_, err = f.client.PutSecret(ctx, env, "LIMITED", value)
	errs = append(errs, err)
	errs = append(errs, f.client.UpdateVariable(ctx, env, "MISSING", value))

	bad := setup(t, githubapi.Config{}, github.Options{Token: "ghs_wrong_token_abcdef"})
	_, err = bad.client.PutSecret(ctx, repo, "X", value)
	errs = append(errs, err)
	if github.StatusOf(err) != 401 {
		t.Errorf("bad token: %v", err)
	}

	// A server that echoes the token back (a proxy, a misconfigured GHES).
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"message":"bad header %s"}`, r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	c, err := github.New(github.Options{BaseURL: echo.URL, Token: token, Clock: githubapi.NewFakeClock(time.Time{})})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListSecrets(ctx, repo)
	errs = append(errs, err)

	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		for _, text := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err)} {
			for _, secret := range []string{token, "ghs_wrong_token_abcdef", "Pa55-very-secret"} {
				if strings.Contains(text, secret) {
					t.Errorf("case %d: error contains %q: %s", i, secret, text)
				}
			}
		}
		t.Logf("case %d: %v", i, err)
	}
}

func TestNew(t *testing.T) {
	for _, u := range []string{"ftp://x", "not a url", "http://"} {
		if _, err := github.New(github.Options{BaseURL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	if _, err := github.New(github.Options{BaseURL: "https://ghe.example.com/api/v3"}); err != nil {
		t.Error(err)
	}
}

// GitHub refusing writes closer than a second apart: each refusal doubles
// the gap, accepted writes bring it back slowly, so refusals stay rare and
// far apart instead of hitting every other write.
func TestWriteGapAdaptsToRefusals(t *testing.T) {
	ctx := context.Background()
	f := setup(t, githubapi.Config{MinWriteInterval: time.Second, RetryAfter: 2 * time.Second}, github.Options{})
	const n = 60
	for i := range n {
		if err := f.client.CreateVariable(ctx, repo, fmt.Sprintf("V%03d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	var refusedAt []int
	for i, w := range f.srv.Writes() {
		if w.Status == http.StatusForbidden {
			refusedAt = append(refusedAt, i)
		}
	}
	st := f.client.Stats()
	if len(refusedAt) == 0 || st.WritesRefused != len(refusedAt) || st.Writes != n+len(refusedAt) {
		t.Fatalf("refused at %v, stats %+v", refusedAt, st)
	}
	// The first refusal comes at the second write (750 ms after the
	// first); after it, at least a dozen writes go through between two.
	if refusedAt[0] != 1 {
		t.Errorf("first refusal at write %d", refusedAt[0])
	}
	for i := 1; i < len(refusedAt); i++ {
		if refusedAt[i]-refusedAt[i-1] < 12 {
			t.Errorf("refusals at writes %v: too close", refusedAt)
		}
	}
	if st.MaxWriteGap < 1500*time.Millisecond || st.WriteGap < github.DefaultWriteGap || st.RefusalWait != 2*time.Second {
		t.Errorf("gaps: %+v", st)
	}
	c := f.client
	c.SetWriteGap(0)
	if c.WriteGap() != github.DefaultWriteGap {
		t.Errorf("gap after SetWriteGap(0): %s", c.WriteGap())
	}
}

// A start deadline refuses a write that could not start before it, without
// sending it, and says it was the start deadline.
func TestStartDeadline(t *testing.T) {
	f := setup(t, githubapi.Config{}, github.Options{WriteGap: time.Second})
	ctx := github.WithStartDeadline(context.Background(), f.clock.Now().Add(1500*time.Millisecond))
	for i := range 2 {
		if err := f.client.CreateVariable(ctx, repo, fmt.Sprintf("V%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	err := f.client.CreateVariable(ctx, repo, "V2", "x") // its turn comes at 2 s
	var w *github.WaitError
	if !errors.As(err, &w) || !w.StartDeadline || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third write: %v", err)
	}
	if n := len(f.srv.Writes()); n != 2 {
		t.Fatalf("%d writes sent", n)
	}
	// Reads under the same deadline are refused once it has passed.
	f.clock.Advance(time.Second)
	if _, err := f.client.ListVariables(ctx, repo); !errors.As(err, &w) || !w.StartDeadline {
		t.Fatalf("read after the start deadline: %v", err)
	}
}

// A start deadline that passes while a write is answered does not cut the
// write short: its answer is not lost.
func TestStartDeadlineLetsAWriteUnderWayFinish(t *testing.T) {
	srv := githubapi.Start(githubapi.Config{Token: token, Latency: 300 * time.Millisecond})
	t.Cleanup(srv.Close)
	srv.AddRepository("acme", "app")
	c, err := github.New(github.Options{BaseURL: srv.URL(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ctx := github.WithStartDeadline(context.Background(), time.Now().Add(50*time.Millisecond))
	if err := c.CreateVariable(ctx, repo, "V", "x"); err != nil {
		t.Fatalf("a write sent before the start deadline: %v", err)
	}
	if _, ok := srv.Variable(githubapi.Repo("acme", "app"), "V"); !ok {
		t.Fatal("not written")
	}
}
