package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/testenv"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

func secrets(f *testenv.Fleet) []string { return append(f.Passwords(), f.APIKey) }

// Fifty tenants from a cold start, a re-run with nothing to do, then one new
// migration applied exactly once.
func TestMigrateFleetThenRerunThenNewMigration(t *testing.T) {
	f := newFleet(t, 50, neonapi.Config{})
	want := baseVersions(t)

	r := runPgfleet(t, neonInputs(f, "testdata/migrations"), "PGFLEET_PROGRESS_EVERY=20ms")
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"total": "50", "succeeded": "50", "failed": "0"})
	t.Logf("50 tenants, cold, through the Neon emulator: %s", r.elapsed.Round(time.Millisecond))
	if !strings.Contains(r.stdout, "progress: ") || !strings.Contains(r.stdout, "tenants/s") || !strings.Contains(r.stdout, "finished: 50/50 done") {
		t.Fatalf("no progress lines (done/total, rate, ETA):\n%s", r.stdout)
	}
	for _, tn := range f.Tenants {
		if got := versions(t, tn.DB.URL); !slices.Equal(got, want) {
			t.Fatalf("%s has versions %v, want %v", tn.ProjectID, got, want)
		}
	}
	if !r.reportOK || len(r.report.Tenants) != 50 || r.outputs["report-file"] == "" {
		t.Fatalf("report: ok=%v tenants=%d output=%q", r.reportOK, len(r.report.Tenants), r.outputs["report-file"])
	}
	for _, rec := range r.report.Tenants {
		if rec.Status != "succeeded" || rec.From != "" || rec.To != want[len(want)-1] || len(rec.Applied) != len(want) {
			t.Fatalf("report record %+v", rec)
		}
	}
	if !strings.Contains(r.summary, "50 tenants") || !strings.Contains(r.summary, want[len(want)-1]) {
		t.Fatalf("summary lacks totals or versions:\n%s", r.summary)
	}
	assertNoLeak(t, r, secrets(f)...)
	assertMasked(t, r, f.Passwords()...)
	// Neon: one page of 400, and connection strings asked for unpooled.
	var pages, uris int
	for _, req := range f.Neon.Requests() {
		switch {
		case req.Path == "/api/v2/projects":
			pages++
			if req.Query.Get("limit") != "400" {
				t.Fatalf("projects listed with %q, want limit=400", req.Query)
			}
		case strings.HasSuffix(req.Path, "/connection_uri"):
			uris++
			if req.Query.Get("pooled") != "false" {
				t.Fatalf("connection_uri asked with %q, want pooled=false", req.Query)
			}
		}
	}
	if pages != 1 || uris != 50 {
		t.Fatalf("%d project pages and %d connection_uri calls, want 1 and 50", pages, uris)
	}

	// Nothing to do.
	r = runPgfleet(t, neonInputs(f, "testdata/migrations"))
	mustCode(t, r, 0)
	t.Logf("50 tenants, nothing to do: %s", r.elapsed.Round(time.Millisecond))
	wantOutputs(t, r, map[string]string{"up-to-date": "50", "succeeded": "0"})

	// One new migration: applied once, then up to date.
	dir := migrationsCopy(t, map[string]string{"29990101000000_add_labels.sql": "-- migrate:up\nCREATE TABLE labels (id bigint PRIMARY KEY, name text NOT NULL);\n-- migrate:down\nDROP TABLE labels;\n"})
	r = runPgfleet(t, neonInputs(f, dir))
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"succeeded": "50"})
	for _, rec := range r.report.Tenants {
		if len(rec.Applied) != 1 || rec.Applied[0] != "29990101000000_add_labels.sql" || rec.From != want[len(want)-1] || rec.To != "29990101000000" {
			t.Fatalf("record %+v", rec)
		}
	}
	r = runPgfleet(t, neonInputs(f, dir))
	mustCode(t, r, 0)
	if r.outputs["up-to-date"] != "50" {
		t.Fatalf("second run with the new migration: %v", r.outputs)
	}
	wantAll := append(slices.Clone(want), "29990101000000")
	for _, tn := range f.Tenants {
		if got := versions(t, tn.DB.URL); !slices.Equal(got, wantAll) {
			t.Fatalf("%s has versions %v, want %v", tn.ProjectID, got, wantAll)
		}
	}
}

// One tenant's migration fails: it stays at its old version, the others move
// on, the run exits 1 and the summary names it.
func TestOneTenantFailsOthersMoveOn(t *testing.T) {
	f := newFleet(t, 12, neonapi.Config{})
	r := runPgfleet(t, neonInputs(f, "testdata/migrations"))
	mustCode(t, r, 0)
	bad := f.Tenants[6]
	// A table the new migration also creates, only in this tenant.
	execSQL(t, bad.DB.URL, "CREATE TABLE labels (x int)")
	dir := migrationsCopy(t, map[string]string{
		"29990101000000_add_labels.sql": "-- migrate:up\nCREATE TABLE labels (id bigint PRIMARY KEY, name text NOT NULL);\n-- migrate:down\nDROP TABLE labels;\n",
		"29990102000000_add_color.sql":  "-- migrate:up\nALTER TABLE labels ADD COLUMN color text;\n-- migrate:down\nALTER TABLE labels DROP COLUMN color;\n",
	})
	r = runPgfleet(t, neonInputs(f, dir))
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"failed": "1", "succeeded": "11"})
	base := baseVersions(t)
	if got := versions(t, bad.DB.URL); !slices.Equal(got, base) {
		t.Fatalf("failed tenant has versions %v, want it left at %v", got, base)
	}
	for _, tn := range f.Tenants {
		if tn.ProjectID != bad.ProjectID && len(versions(t, tn.DB.URL)) != len(base)+2 {
			t.Fatalf("%s did not move on", tn.ProjectID)
		}
	}
	rec := r.report.Tenants[r.report.byID()[bad.ProjectID]]
	if rec.Status != "failed" || !strings.Contains(rec.Error, "29990101000000_add_labels.sql") || !strings.Contains(rec.Error, "already exists") {
		t.Fatalf("failed record %+v", rec)
	}
	failures := r.summary[strings.Index(r.summary, "Failures"):]
	if !strings.Contains(failures, bad.Name) || !strings.Contains(failures, bad.ProjectID) || !strings.Contains(failures, "already exists") {
		t.Fatalf("summary does not name the failed tenant and its error:\n%s", r.summary)
	}
	if !strings.Contains(r.stdout, "::group::FAILED "+bad.Name) {
		t.Fatalf("no log group for the failed tenant:\n%s", r.stdout)
	}
	assertNoLeak(t, r, secrets(f)...)

	// A re-run after fixing the tenant picks up where it stopped.
	execSQL(t, bad.DB.URL, "DROP TABLE labels")
	r = runPgfleet(t, neonInputs(f, dir))
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"succeeded": "1", "up-to-date": "11"})
}

// Two runs at the same time (two merges in a row) apply each migration once.
func TestTwoRunsAtOnceApplyEachMigrationOnce(t *testing.T) {
	f := newFleet(t, 20, neonapi.Config{})
	// A slow first migration makes the runs overlap on every tenant.
	dir := migrationsCopy(t, map[string]string{"10000000000000_slow.sql": "-- migrate:up\nSELECT pg_sleep(0.2);\n-- migrate:down\n"})
	began := time.Now()
	a, aout, aerr, adir := start(t, neonInputs(f, dir))
	b, bout, berr, bdir := start(t, neonInputs(f, dir))
	ra := finish(t, a, aout, aerr, adir, began)
	rb := finish(t, b, bout, berr, bdir, began)
	mustCode(t, ra, 0)
	mustCode(t, rb, 0)
	want := append([]string{"10000000000000"}, baseVersions(t)...)
	for _, tn := range f.Tenants {
		if got := versions(t, tn.DB.URL); !slices.Equal(got, want) {
			t.Fatalf("%s: versions %v, want %v", tn.ProjectID, got, want)
		}
	}
	// Per tenant, one run applied the files and the other found it done.
	ai, bi := ra.report.byID(), rb.report.byID()
	for _, tn := range f.Tenants {
		x, y := ra.report.Tenants[ai[tn.ProjectID]], rb.report.Tenants[bi[tn.ProjectID]]
		if len(x.Applied)+len(y.Applied) != len(want) {
			t.Fatalf("%s: run A applied %v, run B applied %v", tn.ProjectID, x.Applied, y.Applied)
		}
	}
}

// SIGTERM in the middle: no new tenants start, in-flight ones roll back or
// finish, the report marks the rest, exit 1, within 10 seconds.
func TestSigtermMidRun(t *testing.T) {
	f := newFleet(t, 10, neonapi.Config{})
	dir := migrationsCopy(t, map[string]string{"29990101000000_slow.sql": "-- migrate:up\nCREATE TABLE slow_marker (x int);\nSELECT pg_sleep(60);\n-- migrate:down\nDROP TABLE slow_marker;\n"})
	in := neonInputs(f, dir)
	in["concurrency"] = "2"
	// SIGTERM once two tenants are inside the slow migration.
	r, took := runAndTerminate(t, in, nil, 30*time.Second, "tenants never reached the slow migration", func() bool { return countSleepers(t) >= 2 })
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"cancelled": "2", "skipped": "8"})
	if !strings.Contains(strings.ToLower(r.summary), "cancel") {
		t.Fatalf("summary does not say the run was cancelled:\n%s", r.summary)
	}
	base := baseVersions(t)
	for _, tn := range f.Tenants {
		got := versions(t, tn.DB.URL)
		if len(got) != 0 && !slices.Equal(got, base) {
			t.Fatalf("%s half migrated: %v", tn.ProjectID, got)
		}
		if tableExists(t, tn.DB.URL, "slow_marker") {
			t.Fatalf("%s kept the rolled-back migration's table", tn.ProjectID)
		}
	}
	if n := countSleepers(t); n != 0 {
		t.Fatalf("%d migration backends still running after exit", n)
	}
}

// A canary failure leaves every other tenant untouched.
func TestCanaryFailureLeavesRestUntouched(t *testing.T) {
	f := newFleet(t, 15, neonapi.Config{})
	canary := f.Tenants[0]
	execSQL(t, canary.DB.URL, "CREATE TABLE users (x int)") // the first migration will fail here
	in := neonInputs(f, "testdata/migrations")
	in["canary"] = canary.Name
	r := runPgfleet(t, in)
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"failed": "1", "skipped": "14"})
	for _, tn := range f.Tenants[1:] {
		if versions(t, tn.DB.URL) != nil {
			t.Fatalf("%s was touched although the canary failed", tn.ProjectID)
		}
	}
	if !strings.Contains(r.summary, "canary") {
		t.Fatalf("summary does not say the canary failed:\n%s", r.summary)
	}

	// Canary by count: the first 3 run first and all succeed, then the rest.
	execSQL(t, canary.DB.URL, "DROP TABLE users")
	in["canary"] = "3"
	r = runPgfleet(t, in)
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"succeeded": "15"})
}

// Three shards cover the fleet exactly once.
func TestShardsCoverFleetExactlyOnce(t *testing.T) {
	f := newFleet(t, 30, neonapi.Config{})
	seen := map[string]int{}
	for i := 1; i <= 3; i++ {
		in := neonInputs(f, "testdata/migrations")
		in["shard"] = fmt.Sprintf("%d/3", i)
		r := runPgfleet(t, in)
		mustCode(t, r, 0)
		if r.outputs["total"] == "0" || r.outputs["total"] == "30" {
			t.Fatalf("shard %d/3 took %s tenants", i, r.outputs["total"])
		}
		for _, rec := range r.report.Tenants {
			seen[rec.ID]++
		}
	}
	for _, tn := range f.Tenants {
		if seen[tn.ProjectID] != 1 {
			t.Fatalf("%s was in %d shards", tn.ProjectID, seen[tn.ProjectID])
		}
		if versions(t, tn.DB.URL) == nil {
			t.Fatalf("%s was not migrated", tn.ProjectID)
		}
	}
}

// A dry run reports pending files and changes nothing.
func TestDryRunChangesNothing(t *testing.T) {
	f := newFleet(t, 5, neonapi.Config{})
	in := neonInputs(f, "testdata/migrations")
	in["dry-run"] = "true"
	r := runPgfleet(t, in)
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"pending": "5"})
	for _, rec := range r.report.Tenants {
		if len(rec.Pending) != len(baseVersions(t)) || len(rec.Applied) != 0 {
			t.Fatalf("dry-run record %+v", rec)
		}
	}
	for _, tn := range f.Tenants {
		if versions(t, tn.DB.URL) != nil {
			t.Fatalf("dry run created the migrations table in %s", tn.ProjectID)
		}
	}
	if !strings.Contains(strings.ToLower(r.summary), "dry run") {
		t.Fatalf("summary does not say dry run:\n%s", r.summary)
	}
}

// The Neon API answering 429 and 503 (and 423) for a while loses no tenant.
func TestFlakyNeonAPILosesNoTenant(t *testing.T) {
	f := newFleet(t, 25, neonapi.Config{PerRouteRPS: 8, Latency: 5 * time.Millisecond})
	f.Neon.FailNext(3, 503)
	in := neonInputs(f, "testdata/migrations")
	in["neon-rate-limit"] = "700" // more than the emulator allows per route: 429s will come
	in["concurrency"] = "20"
	r := runPgfleet(t, in)
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"succeeded": "25"})
	total, limited := f.Neon.Stats()
	if limited == 0 {
		t.Fatalf("the emulator never answered 429 (%d requests): the test did not exercise retries", total)
	}
	t.Logf("%d Neon API requests, %d answered 429, 3 answered 503: all 25 tenants migrated", total, limited)
	if !strings.Contains(r.stdout, "::debug::Neon API GET") {
		t.Fatalf("retries are not logged as debug lines:\n%s", r.stdout)
	}
	assertNoLeak(t, r, secrets(f)...)
	f.Neon.FailNext(4, 423)
	r = runPgfleet(t, in)
	mustCode(t, r, 0)
	if r.outputs["up-to-date"] != "25" {
		t.Fatalf("outputs after 423s %v", r.outputs)
	}
}

// A tenant that takes too long is stopped for real: its backend is gone and
// it stays at its last good version.
func TestTenantTimeoutStopsTheWork(t *testing.T) {
	f := newFleet(t, 3, neonapi.Config{})
	dir := migrationsCopy(t, map[string]string{"29990101000000_slow.sql": "-- migrate:up\nCREATE TABLE slow_marker (x int);\nSELECT pg_sleep(60);\n-- migrate:down\n"})
	in := neonInputs(f, dir)
	in["tenant-timeout"] = "3s"
	r := runPgfleet(t, in)
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"failed": "3"})
	if r.elapsed > 30*time.Second {
		t.Fatalf("run took %s with a 3s tenant-timeout", r.elapsed)
	}
	t.Logf("3 tenants stuck in a 60s statement, tenant-timeout 3s: run took %s", r.elapsed.Round(time.Millisecond))
	for _, rec := range r.report.Tenants {
		if !strings.Contains(rec.Error, "timed out") || rec.To != baseVersions(t)[len(baseVersions(t))-1] {
			t.Fatalf("record %+v", rec)
		}
	}
	for _, tn := range f.Tenants {
		if tableExists(t, tn.DB.URL, "slow_marker") {
			t.Fatalf("%s kept part of the timed-out migration", tn.ProjectID)
		}
	}
	if n := countSleepers(t); n != 0 {
		t.Fatalf("%d backends still running the timed-out migration", n)
	}
}

// database-urls instead of Neon: named and bare URLs.
func TestDatabaseURLsSource(t *testing.T) {
	f := newFleet(t, 3, neonapi.Config{})
	list := fmt.Sprintf("# tenants\nalpha=%s\n\nbeta=%s\n   %s\n", f.Tenants[0].DB.URL, f.Tenants[1].DB.URL, f.Tenants[2].DB.URL)
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": list, "migrations-dir": "testdata/migrations"})
	mustCode(t, r, 0)
	ids := r.report.byID()
	if _, ok := ids["alpha"]; !ok || len(ids) != 3 {
		t.Fatalf("tenants %v", ids)
	}
	if _, ok := ids["127.0.0.1/"+f.Tenants[2].DB.Name]; !ok {
		t.Fatalf("a bare URL should be named host/db: %v", ids)
	}
	if len(f.Neon.Requests()) != 0 {
		t.Fatal("the Neon API was called although database-urls was set")
	}
	assertNoLeak(t, r, secrets(f)...)
	assertMasked(t, r, f.Passwords()...)
}

// Neon keys that need an organization, and a rejected key.
func TestNeonCredentialProblems(t *testing.T) {
	f := newFleet(t, 2, neonapi.Config{RequireOrgID: "org-test-123"})
	r := runPgfleet(t, neonInputs(f, "testdata/migrations"))
	mustCode(t, r, 2)
	if !strings.Contains(r.stdout+r.stderr, "neon-org-id") {
		t.Fatalf("the error should point at neon-org-id:\n%s\n%s", r.stdout, r.stderr)
	}
	in := neonInputs(f, "testdata/migrations")
	in["neon-org-id"] = "org-test-123"
	mustCode(t, runPgfleet(t, in), 0)

	in["neon-api-key"] = "wrong-key-0123456789"
	r = runPgfleet(t, in)
	mustCode(t, r, 2)
	if !strings.Contains(r.stdout+r.stderr, "neon-api-key") {
		t.Fatalf("the error should point at neon-api-key:\n%s\n%s", r.stdout, r.stderr)
	}
	assertNoLeak(t, r, "wrong-key-0123456789")
}

// Invalid input exits 2, names the input, and touches nothing.
func TestInvalidInputExits2BeforeTouchingAnything(t *testing.T) {
	f := newFleet(t, 2, neonapi.Config{})
	twoUps := "-- migrate:up\nCREATE TABLE a (x int);\n-- migrate:down\nDROP TABLE a;\n-- migrate:up\nCREATE TABLE b (x int);\n-- migrate:down\nDROP TABLE b;\n"
	badDir := migrationsCopy(t, map[string]string{"29990101000000_two_ups.sql": twoUps})
	noUp := migrationsCopy(t, map[string]string{"29990101000000_no_up.sql": "CREATE TABLE a (x int);\n"})
	cases := []struct {
		name   string
		change inputs
		want   []string
	}{
		{"unknown mode", inputs{"mode": "upgrade"}, []string{"mode", "upgrade", "migrate"}},
		{"concurrency 0", inputs{"concurrency": "0"}, []string{"concurrency", "from 1"}},
		{"concurrency abc", inputs{"concurrency": "abc"}, []string{"concurrency", "abc"}},
		{"shard 0/3", inputs{"shard": "0/3"}, []string{"shard", "i/n"}},
		{"shard 4/3", inputs{"shard": "4/3"}, []string{"shard"}},
		{"shard word", inputs{"shard": "half"}, []string{"shard"}},
		{"missing key", inputs{"neon-api-key": ""}, []string{"neon-api-key", "required"}},
		{"tenant-timeout", inputs{"tenant-timeout": "10 minutes"}, []string{"tenant-timeout", "duration"}},
		{"missing migrations dir", inputs{"migrations-dir": filepath.Join(t.TempDir(), "nope")}, []string{"migrations-dir", "does not exist"}},
		{"two up sections", inputs{"migrations-dir": badDir}, []string{"29990101000000_two_ups.sql:5", "migrate:up"}},
		{"statement before up", inputs{"migrations-dir": noUp}, []string{"29990101000000_no_up.sql:1"}},
		{"malformed database-urls", inputs{"database-urls": "alpha=" + f.Tenants[0].DB.URL + "\nbeta=mysql://u:hunter2secret@h/db"}, []string{"database-urls", "line 2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := neonInputs(f, "testdata/migrations")
			for k, v := range c.change {
				in[k] = v
			}
			r := runPgfleet(t, in)
			mustCode(t, r, 2)
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Fatalf("error output lacks %q:\n%s", w, r.stderr)
				}
			}
			if !strings.Contains(r.stdout, "::error") {
				t.Fatalf("no ::error annotation in Actions mode:\n%s", r.stdout)
			}
			assertNoLeak(t, r, append(secrets(f), "hunter2secret")...)
		})
	}
	if n := len(f.Neon.Requests()); n != 0 {
		t.Fatalf("invalid input still made %d Neon API requests", n)
	}
	for _, tn := range f.Tenants {
		if versions(t, tn.DB.URL) != nil {
			t.Fatalf("%s was touched by a run with invalid input", tn.ProjectID)
		}
	}
}

// The CLI: same names as flags, no Actions environment.
func TestCLIFlags(t *testing.T) {
	f := newFleet(t, 3, neonapi.Config{})
	report := filepath.Join(t.TempDir(), "r.json")
	out, err := cli(t, []string{"NEON_API_KEY=" + f.APIKey}, "migrate", "--neon-api-url="+f.Neon.URL(), "--migrations-dir", "testdata/migrations", "--report-file", report, "--concurrency=2").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "3 tenants: 3 succeeded") || strings.Contains(string(out), "::") {
		t.Fatalf("CLI output:\n%s", out)
	}
	if _, err := os.Stat(report); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets(f) {
		if strings.Contains(string(out), s) {
			t.Fatal("a credential leaked into CLI output")
		}
	}
}

// max-failures stops starting tenants once that many have failed.
func TestMaxFailuresStopsTheRun(t *testing.T) {
	f := newFleet(t, 10, neonapi.Config{})
	for _, tn := range f.Tenants[:4] {
		execSQL(t, tn.DB.URL, "CREATE TABLE users (x int)")
	}
	in := neonInputs(f, "testdata/migrations")
	in["concurrency"] = "1"
	in["max-failures"] = "2"
	r := runPgfleet(t, in)
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"failed": "2", "skipped": "8"})
	if !strings.Contains(r.summary, "max-failures") {
		t.Fatalf("summary does not say why the run stopped:\n%s", r.summary)
	}
	for _, tn := range f.Tenants[2:] {
		if versions(t, tn.DB.URL) != nil {
			t.Fatalf("%s was started after max-failures was reached", tn.ProjectID)
		}
	}
}

// branch picks the branch in each project; a branch a project lacks fails
// that tenant with the reason, and a selection matching nothing says so.
func TestBranchAndEmptySelection(t *testing.T) {
	f := newFleet(t, 3, neonapi.Config{})
	in := neonInputs(f, "testdata/migrations")
	in["branch"] = "main"
	r := runPgfleet(t, in)
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"succeeded": "3"})
	in["branch"] = "feature-x"
	r = runPgfleet(t, in)
	mustCode(t, r, 1)
	for _, rec := range r.report.Tenants {
		if rec.Status != "failed" || !strings.Contains(rec.Error, "feature-x") {
			t.Fatalf("record %+v", rec)
		}
	}
	in = neonInputs(f, "testdata/migrations")
	in["projects"] = "nobody-*"
	r = runPgfleet(t, in)
	mustCode(t, r, 0)
	if r.outputs["total"] != "0" || !strings.Contains(r.stdout, "::warning") || !strings.Contains(r.stdout, "no tenants selected") {
		t.Fatalf("outputs %v\n%s", r.outputs, r.stdout)
	}
}

// A tenant whose migration lock is held elsewhere for longer than
// run-lock-wait fails with that reason; the others are not held up.
func TestLockTimeout(t *testing.T) {
	f := newFleet(t, 4, neonapi.Config{})
	held := f.Tenants[2]
	conn := pgcluster.Connect(t, held.DB.URL)
	if _, err := conn.Exec(t.Context(), "SELECT pg_advisory_lock($1)", migrate.LockKey("schema_migrations")); err != nil {
		t.Fatal(err)
	}
	in := neonInputs(f, "testdata/migrations")
	in["run-lock-wait"] = "1s"
	r := runPgfleet(t, in)
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"failed": "1", "succeeded": "3"})
	rec := r.report.Tenants[r.report.byID()[held.ProjectID]]
	if !strings.Contains(rec.Error, "run-lock-wait (1s)") {
		t.Fatalf("record %+v", rec)
	}
	if versions(t, held.DB.URL) != nil {
		t.Fatal("the tenant whose lock was held was migrated anyway")
	}
}

// A file marked transaction:false runs outside a transaction (CREATE INDEX
// CONCURRENTLY refuses to run inside one), and an SQL error names the file,
// line and column.
func TestTransactionFalseAndErrorPosition(t *testing.T) {
	f := newFleet(t, 2, neonapi.Config{})
	dir := migrationsCopy(t, map[string]string{
		"29990101000000_concurrent_index.sql": "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY tasks_due_at_idx ON tasks (due_at);\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY tasks_due_at_idx;\n",
	})
	r := runPgfleet(t, neonInputs(f, dir))
	mustCode(t, r, 0)
	for _, tn := range f.Tenants {
		if !tableExists(t, tn.DB.URL, "tasks_due_at_idx") {
			t.Fatalf("%s lacks the concurrently built index", tn.ProjectID)
		}
	}
	bad := migrationsCopy(t, map[string]string{
		"29990101000000_concurrent_index.sql": "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY tasks_due_at_idx ON tasks (due_at);\n-- migrate:down\n",
		"29990102000000_typo.sql":             "-- migrate:up\nALTER TABLE tasks\n  ADD COLUMN priority int;\nSELEKT 1;\n-- migrate:down\n",
	})
	r = runPgfleet(t, neonInputs(f, bad))
	mustCode(t, r, 1)
	for _, rec := range r.report.Tenants {
		if !strings.Contains(rec.Error, "29990102000000_typo.sql") || !strings.Contains(rec.Error, "line: 4") {
			t.Fatalf("error does not point at the file and line: %q", rec.Error)
		}
	}
	for _, tn := range f.Tenants {
		if columnExists(t, tn.DB.URL, "tasks", "priority") {
			t.Fatalf("%s kept the first statement of a failed migration", tn.ProjectID)
		}
	}
}
