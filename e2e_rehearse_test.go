package main

// End-to-end tests of migrate's rehearse: true (issue 17): the pending
// migrations run on a throwaway Neon branch of each tenant (here a real
// copy of the tenant's database), never on the tenant itself.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/testenv"
	"github.com/pgfleet/pgfleet/internal/testenv/githubapi"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
)

// rehearsalMigrations are three new files, each broken by one kind of data
// a tenant may hold.
var rehearsalMigrations = map[string]string{
	"20250101000000_unique_user_name.sql":   "-- migrate:up\nCREATE UNIQUE INDEX users_name_key ON users (name);\n-- migrate:down\nDROP INDEX users_name_key;\n",
	"20250101000100_tasks_due_required.sql": "-- migrate:up\nALTER TABLE tasks ALTER COLUMN due_at SET NOT NULL;\n-- migrate:down\nALTER TABLE tasks ALTER COLUMN due_at DROP NOT NULL;\n",
	"20250101000200_project_name_check.sql": "-- migrate:up\nALTER TABLE projects ADD CONSTRAINT projects_name_nonempty CHECK (name <> '');\n-- migrate:down\nALTER TABLE projects DROP CONSTRAINT projects_name_nonempty;\n",
}

// breakers hold, in the tenant at that index, data one of the files fails
// on, and the SQL error it fails with.
var breakers = []struct {
	index int
	sql   string
	file  string
	error string
}{
	{3, "INSERT INTO users (email, name) VALUES ('twin@example.com', 'Ada')", "20250101000000_unique_user_name.sql", "could not create unique index"},
	{8, "INSERT INTO tasks (project_id, title) SELECT id, 'undated' FROM projects LIMIT 1", "20250101000100_tasks_due_required.sql", "contains null values"},
	{15, "INSERT INTO projects (owner_id, name) SELECT id, '' FROM users LIMIT 1", "20250101000200_project_name_check.sql", "is violated by some row"},
}

// migratedFleet is a fleet at the base migrations, each tenant holding a
// user, a project and a dated task; the breakers' tenants hold their data
// too.
func migratedFleet(t *testing.T, n int, cfg neonapi.Config) *testenv.Fleet {
	t.Helper()
	f := newFleet(t, n, cfg)
	mustCode(t, runPgfleet(t, neonInputs(f, "testdata/migrations")), 0)
	for i, tn := range f.Tenants {
		sql := "INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada');" +
			"INSERT INTO projects (owner_id, name) SELECT id, 'apollo' FROM users;" +
			"INSERT INTO tasks (project_id, title, due_at) SELECT id, 'launch', now() FROM projects;"
		for _, b := range breakers {
			if b.index == i {
				sql += b.sql + ";"
			}
		}
		execSQL(t, tn.DB.URL, sql)
	}
	return f
}

// fingerprint is what a migration could change in a tenant: its versions,
// its constraints, indexes and column nullability, and its rows.
func tenantFingerprint(t *testing.T, url string) string {
	t.Helper()
	var s string
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT concat_ws(' | ',
			(SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations),
			(SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
			(SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'),
			(SELECT string_agg(table_name || '.' || column_name || ':' || is_nullable, ',' ORDER BY table_name, column_name) FROM information_schema.columns WHERE table_schema = 'public'),
			(SELECT count(*) FROM users), (SELECT count(*) FROM projects), (SELECT count(*) FROM tasks))`).Scan(&s)
	})
	return s
}

func tenantFingerprints(t *testing.T, f *testenv.Fleet) []string {
	t.Helper()
	out := make([]string, len(f.Tenants))
	for i, tn := range f.Tenants {
		out[i] = tenantFingerprint(t, tn.DB.URL)
	}
	return out
}

func tenantSessions(t *testing.T, f *testenv.Fleet) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := f.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rehearsalReport is the JSON report's rehearsal fields.
type rehearsalReport struct {
	Tenants []struct {
		tenantRecord
		WouldFail bool   `json:"would_fail"`
		Branch    string `json:"rehearsal_branch"`
		BranchID  string `json:"rehearsal_branch_id"`
		ExpiresAt string `json:"rehearsal_branch_expires_at"`
		Deleted   bool   `json:"rehearsal_branch_deleted"`
		SampledAs string `json:"rehearsal_sampled_as"`
		Files     []struct {
			File    string  `json:"file"`
			OK      bool    `json:"ok"`
			Seconds float64 `json:"seconds"`
		} `json:"rehearsal_files"`
	} `json:"tenants"`
}

func rehearseInputs(f *testenv.Fleet, dir string) inputs {
	in := neonInputs(f, dir)
	in["rehearse"] = "true"
	return in
}

// productionUntouched checks no session was opened on any tenant during the
// run (read first, before this check opens its own), and that every tenant
// is as it was.
func productionUntouched(t *testing.T, f *testenv.Fleet, sessionsBefore map[string]int64, before []string) {
	t.Helper()
	if after := tenantSessions(t, f); !mapsEqual(after, sessionsBefore) {
		for name, n := range after {
			if n != sessionsBefore[name] {
				t.Errorf("%s: %d sessions during the run; production must never be connected to", name, n-sessionsBefore[name])
			}
		}
	}
	if after := tenantFingerprints(t, f); !slices.Equal(after, before) {
		for i := range after {
			if after[i] != before[i] {
				t.Errorf("%s changed:\n before %s\n after  %s", f.Tenants[i].ProjectID, before[i], after[i])
			}
		}
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func createdBranches(f *testenv.Fleet) int {
	n := 0
	for _, r := range f.Neon.Requests() {
		if r.Route == "POST /projects/{project_id}/branches" && r.Status == http.StatusCreated {
			n++
		}
	}
	return n
}

// Three tenants of twenty hold data the new migrations fail on: the
// rehearsal says exactly which and why, and touches none.
func TestRehearsalFindsTheTenantsAMigrationWouldFailOn(t *testing.T) {
	f := migratedFleet(t, 20, neonapi.Config{Branching: neonapi.BranchConfig{OperationTime: 200 * time.Millisecond}})
	dir := migrationsCopy(t, rehearsalMigrations)
	before := tenantFingerprints(t, f)
	sessionsBefore := tenantSessions(t, f)

	r := runPgfleet(t, rehearseInputs(f, dir), "GITHUB_RUN_ID=4242")
	productionUntouched(t, f, sessionsBefore, before)
	mustCode(t, r, 1)
	assertNoLeak(t, r, secrets(f)...)

	rep := readReport[rehearsalReport](t, r, "migrate")
	if len(rep.Tenants) != 20 {
		t.Fatalf("%d tenants in the report", len(rep.Tenants))
	}
	failing := map[string]int{}
	for k, b := range breakers {
		failing[f.Tenants[b.index].ProjectID] = k + 1
	}
	for _, tn := range rep.Tenants {
		if tn.Branch != "pgfleet-rehearsal-4242" || tn.BranchID == "" || !tn.Deleted || tn.ExpiresAt == "" {
			t.Errorf("%s: branch %q (%s) deleted %v expires %q", tn.ID, tn.Branch, tn.BranchID, tn.Deleted, tn.ExpiresAt)
		}
		k, fails := failing[tn.ID]
		switch {
		case fails:
			b := breakers[k-1]
			if tn.Status != "failed" || !tn.WouldFail || !strings.Contains(tn.Error, b.error) || !strings.Contains(tn.Error, b.file) {
				t.Errorf("%s: %s %q, want failed at %s with %q", tn.ID, tn.Status, tn.Error, b.file, b.error)
			}
		case tn.Status != "succeeded" || tn.WouldFail:
			t.Errorf("%s: %s %q, want succeeded", tn.ID, tn.Status, tn.Error)
		case len(tn.Files) != 3 || !tn.Files[0].OK || tn.Files[0].Seconds <= 0:
			t.Errorf("%s: files %+v, want 3 timed", tn.ID, tn.Files)
		}
	}
	if !strings.Contains(r.summary, "would fail on 3 of 20 tenants.") || !strings.Contains(r.summary, "Slowest files") {
		t.Errorf("summary:\n%s", r.summary)
	}
	for _, b := range breakers {
		if !strings.Contains(r.summary, b.error) {
			t.Errorf("summary lacks %q:\n%s", b.error, r.summary)
		}
	}
	if r.outputs["would-fail"] != "3" {
		t.Errorf("would-fail output %q", r.outputs["would-fail"])
	}
	t.Logf("summary:\n%s", r.summary)
	if n := createdBranches(f); n != 20 {
		t.Errorf("%d branches created, want 20", n)
	}
	if left := f.Neon.CreatedBranches(); len(left) != 0 {
		t.Errorf("%d branches left: %+v", len(left), left)
	}
}

// Refused before anything is touched: rehearse with database-urls (no
// branches) or with dry-run.
func TestRehearsalRefusals(t *testing.T) {
	f := newFleet(t, 1, neonapi.Config{})
	in := rehearseInputs(f, "testdata/migrations")
	in["database-urls"] = "one=" + f.Tenants[0].DB.URL
	r := runPgfleet(t, in)
	mustCode(t, r, 2)
	if !strings.Contains(r.stdout+r.stderr, "database-urls has no branches") {
		t.Errorf("refusal does not say why:\n%s%s", r.stdout, r.stderr)
	}
	in = rehearseInputs(f, "testdata/migrations")
	in["dry-run"] = "true"
	r = runPgfleet(t, in)
	mustCode(t, r, 2)
	if !strings.Contains(r.stdout+r.stderr, "dry-run") {
		t.Errorf("refusal does not say why:\n%s%s", r.stdout, r.stderr)
	}
	if n := len(f.Neon.Requests()); n != 0 {
		t.Errorf("%d API requests before the refusal", n)
	}
}

// 423 on deletes (the creation's operations still run), 429 storms and
// 503s on the branch routes: every branch is still deleted and every
// tenant reported truly.
func TestRehearsalSurvivesLockedRateLimitedAndFlakyNeon(t *testing.T) {
	fail := []int{}
	for range 6 {
		fail = append(fail, http.StatusServiceUnavailable, http.StatusTooManyRequests)
	}
	f := migratedFleet(t, 12, neonapi.Config{
		PerRouteRPS: 4, // far below the client's 35/s: 429 storms
		Branching:   neonapi.BranchConfig{OperationTime: 700 * time.Millisecond, FailChanges: fail},
	})
	dir := migrationsCopy(t, rehearsalMigrations)
	before := tenantFingerprints(t, f)
	sessionsBefore := tenantSessions(t, f)
	r := runPgfleet(t, rehearseInputs(f, dir))
	productionUntouched(t, f, sessionsBefore, before)
	mustCode(t, r, 1)
	rep := readReport[rehearsalReport](t, r, "migrate")
	wantFail := map[string]bool{}
	for _, b := range breakers {
		if b.index < 12 {
			wantFail[f.Tenants[b.index].ProjectID] = true
		}
	}
	for _, tn := range rep.Tenants {
		if tn.WouldFail != wantFail[tn.ID] || (tn.Status == "failed") != wantFail[tn.ID] || !tn.Deleted {
			t.Errorf("%s: %s would_fail %v deleted %v: %s", tn.ID, tn.Status, tn.WouldFail, tn.Deleted, tn.Error)
		}
	}
	locked, limited := 0, 0
	for _, q := range f.Neon.Requests() {
		if strings.Contains(q.Route, "branches/{branch_id}") && q.Status == http.StatusLocked {
			locked++
		}
		if q.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if locked == 0 || limited == 0 {
		t.Errorf("%d deletes met 423 and %d requests 429: the test did not exercise them", locked, limited)
	}
	if left := f.Neon.CreatedBranches(); len(left) != 0 {
		t.Errorf("%d branches left", len(left))
	}
	if !strings.Contains(r.summary, fmt.Sprintf("| branches deleted | %d |", 12)) {
		t.Errorf("summary totals:\n%s", r.summary)
	}
}

// SIGTERM while migrations run on the branches: the run exits within 10s,
// every branch made is deleted (or has an expires_at), production is as it
// was.
func TestRehearsalSigterm(t *testing.T) {
	f := migratedFleet(t, 6, neonapi.Config{Branching: neonapi.BranchConfig{OperationTime: 300 * time.Millisecond}})
	dir := migrationsCopy(t, map[string]string{"29990101000000_slow.sql": "-- migrate:up\nCREATE TABLE slow_marker (x int);\nSELECT pg_sleep(60);\n-- migrate:down\nDROP TABLE slow_marker;\n"})
	before := tenantFingerprints(t, f)
	sessionsBefore := tenantSessions(t, f)
	in := rehearseInputs(f, dir)
	in["concurrency"] = "2"
	r, took := runAndTerminate(t, in, nil, 60*time.Second, "no rehearsal reached the slow migration", func() bool { return countSleepers(t) >= 2 })
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	productionUntouched(t, f, sessionsBefore, before)
	mustCode(t, r, 1)
	for _, b := range f.Neon.CreatedBranches() {
		if b.ExpiresAt == "" {
			t.Errorf("branch %s left without expires_at", b.ID)
		}
	}
	if n := countSleepers(t); n != 0 {
		t.Errorf("%d rehearsal backends still running after exit", n)
	}
	t.Logf("%d branches created, %d left (with expires_at)", createdBranches(f), len(f.Neon.CreatedBranches()))
}

// An account outside expires_at's early access, and a project at its
// branch limit: the run still rehearses the others, deletes every branch
// itself and says no expiry net was set; the full project fails with the
// reason.
func TestRehearsalWithoutExpiryAndAtTheBranchLimit(t *testing.T) {
	f := migratedFleet(t, 4, neonapi.Config{})
	full := f.Tenants[1].ProjectID
	f.Neon.Close()
	// The same tenants behind an emulator with those limits.
	spec, err := neonapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	copied := testenv.WithBranchCopies(neonapi.Config{APIKey: f.APIKey, Spec: spec, Branching: neonapi.BranchConfig{
		RefuseExpiresAt:    true,
		ProjectMaxBranches: map[string]int{full: 1},
	}}, cluster)
	f.Neon = neonapi.New(copied)
	for _, tn := range f.Tenants {
		f.Neon.AddProject(neonapi.Project{ID: tn.ProjectID, Name: tn.Name, Databases: map[string]neonapi.Database{"neondb": {URI: tn.DB.URL, Role: "neondb_owner"}}})
	}
	t.Cleanup(func() {
		for _, v := range f.Neon.SpecViolations() {
			t.Errorf("Neon API exchange does not follow the spec: %s", v)
		}
	})
	// Only the CHECK, which none of these four tenants breaks.
	check := "20250101000200_project_name_check.sql"
	r := runPgfleet(t, rehearseInputs(f, migrationsCopy(t, map[string]string{check: rehearsalMigrations[check]})))
	mustCode(t, r, 1)
	rep := readReport[rehearsalReport](t, r, "migrate")
	for _, tn := range rep.Tenants {
		switch {
		case tn.ID == full:
			if tn.Status != "failed" || !strings.Contains(tn.Error, "branch limit") {
				t.Errorf("%s at its branch limit: %s %q", tn.ID, tn.Status, tn.Error)
			}
		case tn.Status != "succeeded" || tn.ExpiresAt != "" || !tn.Deleted:
			t.Errorf("%s: %s expires %q deleted %v: %s", tn.ID, tn.Status, tn.ExpiresAt, tn.Deleted, tn.Error)
		}
	}
	if !strings.Contains(r.summary, "no expiry net was set") {
		t.Errorf("summary does not say no expiry net was set:\n%s", r.summary)
	}
	if left := f.Neon.CreatedBranches(); len(left) != 0 {
		t.Errorf("%d branches left", len(left))
	}
}

// rehearse-sample: the N tenants with the most storage, N at random, and
// the canaries; the summary says which and why.
func TestRehearsalSample(t *testing.T) {
	f := migratedFleet(t, 10, neonapi.Config{})
	big := []int{4, 6}
	for _, i := range big {
		tn := f.Tenants[i]
		f.Neon.AddProject(neonapi.Project{ID: tn.ProjectID, Name: tn.Name, SyntheticStorageSize: int64(i) << 30,
			Databases: map[string]neonapi.Database{"neondb": {URI: tn.DB.URL, Role: "neondb_owner"}}})
	}
	in := rehearseInputs(f, "testdata/migrations")
	in["rehearse-sample"] = "2"
	in["canary"] = f.Tenants[0].Name
	r := runPgfleet(t, in)
	mustCode(t, r, 0)
	rep := readReport[rehearsalReport](t, r, "migrate")
	why := map[string]string{}
	for _, tn := range rep.Tenants {
		why[tn.ID] = tn.SampledAs
	}
	if len(rep.Tenants) != 5 || why[f.Tenants[0].ProjectID] != "canary" || why[f.Tenants[4].ProjectID] != "largest" || why[f.Tenants[6].ProjectID] != "largest" {
		t.Errorf("sampled %v, want the canary, tenants 4 and 6 (largest) and 2 at random", why)
	}
	if !strings.Contains(r.summary, "5 of the 10 selected tenants: 1 canary, 2 with the most storage, 2 at random") {
		t.Errorf("summary does not say what was sampled:\n%s", r.summary)
	}
	if n := createdBranches(f); n != 5 {
		t.Errorf("%d branches created, want 5", n)
	}
}

// With github-token on a pull request event, the verdict is one comment on
// the pull request: created by the first run, updated by the second.
func TestRehearsalPullRequestComment(t *testing.T) {
	f := migratedFleet(t, 4, neonapi.Config{})
	gh := githubapi.Start(githubapi.Config{Token: "ghs_rehearsal_token_0123456789"})
	t.Cleanup(gh.Close)
	gh.AddRepository("acme", "app")
	event := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(event, []byte(`{"number": 7, "pull_request": {"number": 7}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	in := rehearseInputs(f, migrationsCopy(t, rehearsalMigrations))
	in["github-token"] = "ghs_rehearsal_token_0123456789"
	env := []string{"GITHUB_EVENT_NAME=pull_request", "GITHUB_EVENT_PATH=" + event, "GITHUB_REPOSITORY=acme/app",
		"GITHUB_API_URL=" + gh.URL(), "GITHUB_SERVER_URL=https://github.example"}
	for run, id := range []string{"1001", "1002"} {
		r := runPgfleet(t, in, append(env, "GITHUB_RUN_ID="+id)...)
		mustCode(t, r, 1) // tenant 3 holds duplicate names
		assertNoLeak(t, r, append(secrets(f), "ghs_rehearsal_token_0123456789")...)
		comments := gh.Comments("acme", "app", 7)
		if len(comments) != 1 {
			t.Fatalf("run %d: %d comments, want 1", run+1, len(comments))
		}
		c := comments[0]
		t.Logf("run %d: comment:\n%s", run+1, c)
		if !strings.Contains(c, "would fail on 1 of 4 tenants") || !strings.Contains(c, "could not create unique index") || !strings.Contains(c, "/actions/runs/"+id) {
			t.Errorf("run %d: comment:\n%s", run+1, c)
		}
	}
}

// A parent with several databases and roles: Neon sends no
// connection_uris with the branch, so its URI is asked for by branch_id.
func TestRehearsalBranchOfSeveralDatabases(t *testing.T) {
	f := migratedFleet(t, 2, neonapi.Config{})
	tn := f.Tenants[0]
	f.Neon.AddProject(neonapi.Project{ID: tn.ProjectID, Name: tn.Name, Databases: map[string]neonapi.Database{
		"neondb":    {URI: tn.DB.URL, Role: "neondb_owner"},
		"analytics": {URI: tn.DB.URL, Role: "analytics_owner"},
	}})
	before := tenantFingerprints(t, f)
	sessionsBefore := tenantSessions(t, f)
	setup := len(f.Neon.Requests()) // the real migrate run that made the fleet
	r := runPgfleet(t, rehearseInputs(f, "testdata/migrations"))
	productionUntouched(t, f, sessionsBefore, before)
	mustCode(t, r, 0)
	asked := 0
	for _, q := range f.Neon.Requests()[setup:] {
		if q.Route == "GET /projects/{project_id}/connection_uri" {
			if q.Query.Get("branch_id") == "" || q.Query.Get("database_name") != "neondb" {
				t.Errorf("connection_uri asked without the branch: %v", q.Query)
			}
			asked++
		}
	}
	if asked != 1 {
		t.Errorf("connection_uri asked %d times, want once (the tenant with two databases)", asked)
	}
	if left := f.Neon.CreatedBranches(); len(left) != 0 {
		t.Errorf("%d branches left", len(left))
	}
}
