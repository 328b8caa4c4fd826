package main

// End-to-end tests of migrate under faults and awkward input: dropped
// connections, passwords with any character, protections that must not
// switch off silently, fleets too big for one variable.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// pctEncode percent-encodes every byte outside [A-Za-z0-9], as a careful
// user would write a password into a URL.
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// tenantURL builds a tenant's URL with the password written as given.
func tenantURL(db pgcluster.TenantDB, password string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", db.Role, password, cluster.Port(), db.Name)
}

func newTenants(t *testing.T, prefix string, n int) []pgcluster.TenantDB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbs, err := cluster.CreateTenants(ctx, prefix, n)
	if err != nil {
		t.Fatal(err)
	}
	return dbs
}

func setPassword(t *testing.T, db pgcluster.TenantDB, password string) {
	t.Helper()
	execSQL(t, cluster.AdminURL("postgres"), fmt.Sprintf("ALTER ROLE %s PASSWORD %s", pgx.Identifier{db.Role}.Sanitize(), quoteLit(password)))
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// killer terminates pgfleet's backends on db while they run a statement
// matching like, until stop is called (once: only the first time).
func killer(t *testing.T, db string, like string, once bool) (stop func() int) {
	return terminator(t, db, "pgfleet", like, once, func() bool { return true })
}

// terminator terminates backends on db of the application app running a
// statement like like, whenever when() holds (once: only the first time),
// until stop is called; stop reports how many it terminated.
func terminator(t *testing.T, db, app, like string, once bool, when func() bool) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	killed := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := pgx.Connect(ctx, cluster.AdminURL("postgres"))
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			if !when() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			var n int
			err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = $1 AND application_name = $2 AND query LIKE $3 AND state = 'active'`, db, app, like).Scan(&n)
			if err == nil && n > 0 {
				killed += n
				if once {
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() int { cancel(); wg.Wait(); return killed }
}

// A backend terminated mid-migration (57P01) is retried from the top; the
// run finishes the tenant and says it took two sessions.
func TestDroppedConnectionMidMigrationIsRetried(t *testing.T) {
	dbs := newTenants(t, "drop", 3)
	dir := migrationsCopy(t, map[string]string{"29990101000000_slow.sql": "-- migrate:up\nCREATE TABLE slow_marker (id int);\nSELECT pg_sleep(1.5);\n-- migrate:down\nDROP TABLE slow_marker;\n"})
	var list []string
	for _, db := range dbs {
		list = append(list, db.Name+"="+db.URL)
	}
	stop := killer(t, dbs[1].Name, "%pg_sleep%", true)
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": strings.Join(list, "\n"), "migrations-dir": dir})
	if n := stop(); n == 0 {
		t.Fatal("the test never terminated the backend")
	}
	mustCode(t, r, 0)
	want := append(baseVersions(t), "29990101000000")
	for _, db := range dbs {
		if got := versions(t, db.URL); !slices.Equal(got, want) {
			t.Errorf("%s has %v, want %v", db.Name, got, want)
		}
	}
	rec := r.report.Tenants[r.report.byID()[dbs[1].Name]]
	if rec.Status != "succeeded" || rec.Attempts != 2 {
		t.Errorf("killed tenant: status %s, attempts %d; want succeeded in 2", rec.Status, rec.Attempts)
	}
	t.Logf("terminated once mid-migration: succeeded in %d sessions, run took %s", rec.Attempts, r.elapsed.Round(time.Millisecond))
}

// A tenant whose session keeps dropping fails after a few sessions, and the
// report states the version the database really holds: the files committed
// before the drops, not "none", and no log line claims the rolled-back file.
func TestDroppedConnectionReportsTheTruth(t *testing.T) {
	dbs := newTenants(t, "truth", 1)
	dir := migrationsCopy(t, map[string]string{"29990101000000_slow.sql": "-- migrate:up\nSELECT pg_sleep(5);\n-- migrate:down\n"})
	stop := killer(t, dbs[0].Name, "%pg_sleep%", false)
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": "only=" + dbs[0].URL, "migrations-dir": dir})
	stop()
	mustCode(t, r, 1)
	base := baseVersions(t)
	if got := versions(t, dbs[0].URL); !slices.Equal(got, base) {
		t.Fatalf("database holds %v, want %v", got, base)
	}
	rec := r.report.Tenants[0]
	if rec.Status != "failed" || rec.To != base[len(base)-1] || len(rec.Applied) != len(base) || rec.Attempts != 3 {
		t.Errorf("record: status %s to %q applied %v attempts %d; want failed at %s with %d applied in 3 sessions", rec.Status, rec.To, rec.Applied, rec.Attempts, base[len(base)-1], len(base))
	}
	if !slices.Equal(rec.Pending, []string{"29990101000000_slow.sql"}) || !strings.Contains(rec.Error, "connection to the tenant was lost") {
		t.Errorf("pending %v, error %q", rec.Pending, rec.Error)
	}
	if strings.Contains(r.stdout, "Applied: 29990101000000_slow.sql") {
		t.Errorf("a log line claims the rolled-back file was applied:\n%s", r.stdout)
	}
	if !strings.Contains(r.summary, "| "+base[len(base)-1]+" |") {
		t.Errorf("summary does not show the version the tenant holds:\n%s", r.summary)
	}
}

// A session terminated while it waits for another run's lock is retried and
// goes on once the lock is free.
func TestDroppedConnectionWhileWaitingForLock(t *testing.T) {
	dbs := newTenants(t, "lockdrop", 1)
	holder := pgcluster.Connect(t, dbs[0].URL)
	defer holder.Close(context.Background())
	if _, err := holder.Exec(context.Background(), "SELECT pg_advisory_lock($1)", migrate.LockKey("schema_migrations")); err != nil {
		t.Fatal(err)
	}
	stop := killer(t, dbs[0].Name, "%pg_advisory_lock%", true)
	go func() {
		time.Sleep(3 * time.Second)
		holder.Exec(context.Background(), "SELECT pg_advisory_unlock_all()")
	}()
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": "only=" + dbs[0].URL, "migrations-dir": "testdata/migrations"})
	if stop() == 0 {
		t.Fatal("the waiting session was never terminated")
	}
	mustCode(t, r, 0)
	if rec := r.report.Tenants[0]; rec.Status != "succeeded" || rec.Attempts < 2 {
		t.Errorf("record %+v: want succeeded after a retried session", rec)
	}
}

// Passwords with every awkward character connect when percent-encoded and
// appear nowhere in anything the run writes; a raw '@' is refused before
// any tenant is touched, naming the character.
func TestPasswordsWithAnyCharacter(t *testing.T) {
	passwords := []string{`p@ss:w/rd%#?&='"`, "with space and\nnewline-second-line", `back\slash"quote'`}
	dbs := newTenants(t, "pw", len(passwords))
	var list []string
	for i, db := range dbs {
		setPassword(t, db, passwords[i])
		list = append(list, fmt.Sprintf("pw%d=%s", i, tenantURL(db, pctEncode(passwords[i]))))
	}
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": strings.Join(list, "\n"), "migrations-dir": "testdata/migrations"})
	mustCode(t, r, 0)
	var leaks []string
	for _, p := range passwords {
		leaks = append(leaks, p, pctEncode(p))
		leaks = append(leaks, strings.Split(p, "\n")...)
	}
	assertNoLeak(t, r, leaks...)
	assertMasked(t, r, "with space and", "newline-second-line")

	// The same password with a raw '@': Go's URL parser and pgx would split
	// it differently, so it is refused, before any tenant is touched.
	raw := tenantURL(dbs[0], "p@ss-Word-77")
	r = runPgfleet(t, inputs{"mode": "migrate", "database-urls": "bad=" + raw, "migrations-dir": "testdata/migrations"})
	mustCode(t, r, 2)
	if !strings.Contains(r.stderr, "input database-urls: line 1: the password holds '@'") || !strings.Contains(r.stderr, "percent-encode") {
		t.Errorf("message does not name the character and the fix:\n%s", r.stderr)
	}
	assertNoLeak(t, r, "p@ss-Word-77", "ss-Word-77")
}

// A one-letter password is kept out of every URL but does not garble the
// messages around it.
func TestShortPasswordDoesNotGarbleMessages(t *testing.T) {
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": "postgres://u:p@127.0.0.1:1/x", "migrations-dir": "/nonexistent/migrations", "tenant-timeout": "2s"})
	mustCode(t, r, 2)
	if !strings.Contains(r.stderr, "pgfleet: input migrations-dir: \"/nonexistent/migrations\" does not exist (relative paths are from the repository root") {
		t.Errorf("message garbled:\n%s", r.stderr)
	}
	r = runPgfleet(t, inputs{"mode": "migrate", "database-urls": "postgres://u:p@127.0.0.1:1/x", "migrations-dir": "testdata/migrations", "tenant-timeout": "2s"})
	mustCode(t, r, 1)
	var log []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if !strings.HasPrefix(l, "::add-mask::") { // the runner's masks may carry it
			log = append(log, l)
		}
	}
	for name, text := range map[string]string{"log": strings.Join(log, "\n"), "summary": r.summary, "report": r.files["pgfleet-migrate-report.json"]} {
		if strings.Contains(text, "u:p@") || strings.Contains(text, "***gfleet") {
			t.Errorf("%s shows or garbles the password:\n%s", name, text)
		}
	}
	if strings.Count(r.stdout, "connect: connection refused") > 2 { // the log line and the annotation
		t.Errorf("the connection error is repeated:\n%s", r.stdout)
	}
}

// Protections the user asked for never switch off silently.
func TestCanaryAndReportProtections(t *testing.T) {
	f := newFleet(t, 4, neonapi.Config{})
	in := neonInputs(f, "testdata/migrations")
	in["canary"] = "no-such-project-*"
	r := runPgfleet(t, in)
	mustCode(t, r, 2)
	if !strings.Contains(r.stderr, "input canary:") || !strings.Contains(r.stderr, "matches none of the 4 selected tenants") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	for _, tn := range f.Tenants {
		if v := versions(t, tn.DB.URL); len(v) != 0 {
			t.Fatalf("%s was touched: %v", tn.ProjectID, v)
		}
	}

	in = neonInputs(f, "testdata/migrations")
	in["report-file"] = "/proc/pgfleet-cannot-write-here/report.json"
	r = runPgfleet(t, in)
	mustCode(t, r, 2)
	if !strings.Contains(r.stderr, "input report-file: cannot write the report") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	for _, tn := range f.Tenants {
		if v := versions(t, tn.DB.URL); len(v) != 0 {
			t.Fatalf("%s was touched although the report cannot be written", tn.ProjectID)
		}
	}
}

// database-urls-file carries a fleet too big for one variable: 5,000
// lines, read whole, of which a selection runs; the CLI reads - from stdin.
func TestDatabaseURLsFile(t *testing.T) {
	dbs := newTenants(t, "file", 2)
	var b strings.Builder
	b.WriteString("# 5,000 tenants\n")
	for i := 0; i < 4998; i++ {
		fmt.Fprintf(&b, "filler-%04d=postgres://u:pw-%04d@127.0.0.1:1/db%04d\n", i, i, i)
	}
	for i, db := range dbs {
		fmt.Fprintf(&b, "real-%d=%s\n", i, db.URL)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tenants.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if b.Len() < 128<<10 {
		t.Fatalf("the file is %d bytes; the test needs more than one variable can hold", b.Len())
	}
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls-file": path, "projects": "real-*", "migrations-dir": "testdata/migrations"})
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"total": "2", "succeeded": "2"})
	assertNoLeak(t, r, dbs[0].Password, dbs[1].Password)

	cmd := cli(t, nil, "migrate", "--database-urls-file", "-", "--projects", "real-*", "--dry-run", "--migrations-dir", "testdata/migrations", "--report-file", filepath.Join(dir, "r.json"))
	cmd.Stdin = strings.NewReader(b.String())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 tenants: 0 succeeded, 2 up to date") {
		t.Fatalf("stdin: %v\n%s", err, out)
	}
	if strings.Contains(string(out), dbs[0].Password) {
		t.Fatal("a password leaked to the CLI output")
	}
}

// A fleet where tenants fail in different ways at once: each failure stays
// with its tenant, is reported with its reason, and a re-run after the fixes
// converges with every tenant consistent (its tables match its versions).
func TestMixedFailuresThenConverge(t *testing.T) {
	dbs := newTenants(t, "mixed", 5)
	ok1, ok2, conflict, term, wrongpw := dbs[0], dbs[1], dbs[2], dbs[3], dbs[4]
	execSQL(t, conflict.URL, "CREATE TABLE projects (x int)") // the second file creates it too
	dir := migrationsCopy(t, map[string]string{"29990101000000_slow.sql": "-- migrate:up\nCREATE TABLE slow_marker (id int);\nSELECT pg_sleep(1.5);\n-- migrate:down\nDROP TABLE slow_marker;\n"})
	list := []string{
		"ok1=" + ok1.URL,
		"ok2=" + ok2.URL,
		"conflict=" + conflict.URL,
		"term=" + term.URL,
		"wrongpw=" + tenantURL(wrongpw, "not-the-password"),
		"closedport=postgres://u:pw-closed-port@127.0.0.1:1/db?sslmode=disable",
		"missingdb=" + strings.Replace(ok1.URL, "/"+ok1.Name+"?", "/no_such_database?", 1),
	}
	stop := killer(t, term.Name, "%pg_sleep%", true)
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": strings.Join(list, "\n"), "migrations-dir": dir, "tenant-timeout": "20s"})
	stop()
	mustCode(t, r, 1)
	want := map[string]struct{ status, reason string }{
		"ok1":        {"succeeded", ""},
		"ok2":        {"succeeded", ""},
		"term":       {"succeeded", ""},
		"conflict":   {"failed", `relation "projects" already exists`},
		"wrongpw":    {"failed", "password authentication failed"},
		"closedport": {"failed", "connection refused"},
		"missingdb":  {"failed", `database "no_such_database" does not exist`},
	}
	byID := r.report.byID()
	for id, w := range want {
		rec := r.report.Tenants[byID[id]]
		if rec.Status != w.status || !strings.Contains(rec.Error, w.reason) {
			t.Errorf("%s: status %s error %q; want %s with %q", id, rec.Status, rec.Error, w.status, w.reason)
		}
		if w.status == "failed" && !strings.Contains(r.summary, strings.ReplaceAll(w.reason, "_", `\_`)) {
			t.Errorf("%s's reason is not in the summary", id)
		}
	}
	if rec := r.report.Tenants[byID["wrongpw"]]; strings.Count(rec.Error, "password authentication failed") > 1 {
		t.Errorf("an authentication failure was retried or repeated: %q", rec.Error)
	}
	assertNoLeak(t, r, ok1.Password, ok2.Password, conflict.Password, term.Password, wrongpw.Password, "not-the-password", "pw-closed-port")

	// Fix the conflicting tenant and run again: it catches up; the others
	// stay as they were.
	execSQL(t, conflict.URL, "DROP TABLE projects")
	r = runPgfleet(t, inputs{"mode": "migrate", "database-urls": strings.Join(list[:4], "\n"), "migrations-dir": dir})
	mustCode(t, r, 0)
	tables := map[string]string{"20240101120000": "users", "20240101120100": "projects", "20240101120200": "tasks", "29990101000000": "slow_marker"}
	for _, db := range []pgcluster.TenantDB{ok1, ok2, conflict, term} {
		recorded := versions(t, db.URL)
		if len(recorded) != len(tables) {
			t.Errorf("%s: versions %v, want all %d", db.Name, recorded, len(tables))
		}
		for v, table := range tables {
			if slices.Contains(recorded, v) != tableExists(t, db.URL, table) {
				t.Errorf("%s: version %s recorded %v but table %s exists %v", db.Name, v, slices.Contains(recorded, v), table, !slices.Contains(recorded, v))
			}
		}
	}
}
