package migrate

// Migrator.Work against a real PostgreSQL cluster (internal/testenv/pgcluster;
// `make postgres` installs the server when missing). Each test makes its own
// tenants, so the tests run in parallel on one cluster.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/tenant"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

var cluster pgcluster.Shared

func TestMain(m *testing.M) { cluster.Main(m) }

// newTenant creates a fresh tenant database on the package's cluster.
func newTenant(t *testing.T) tenant.Tenant {
	t.Helper()
	db := cluster.NewTenant(t, "mig")
	return tenant.Tenant{ID: db.Name, Name: db.Name, URL: db.URL}
}

func exists(t *testing.T, url, relation string) bool {
	t.Helper()
	var ok bool
	if err := pgcluster.Connect(t, url).QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", relation).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// recorded lists the versions in the migrations table, sorted.
func recorded(t *testing.T, url, table string) []string {
	t.Helper()
	rows, err := pgcluster.Connect(t, url).Query(context.Background(), "SELECT version::text FROM "+pgx.Identifier(strings.Split(table, ".")).Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(versions)
	return versions
}

func loadSet(t *testing.T, dir string) *Set {
	t.Helper()
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func work(t *testing.T, m *Migrator, tn tenant.Tenant, timeout time.Duration) (fleet.Status, *Detail, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	status, detail, err := m.Work(ctx, tn)
	elapsed := time.Since(start)
	if detail == nil {
		// Versions never read (no connection, lock not taken): no detail,
		// so the report says "not reached" rather than "none".
		if err == nil {
			t.Fatal("Work returned no detail and no error")
		}
		return status, nil, elapsed, err
	}
	d, ok := detail.(*Detail)
	if !ok || d == nil {
		t.Fatalf("Work returned detail %#v (%T), want a *Detail", detail, detail)
	}
	return status, d, elapsed, err
}

const (
	v1 = "20240101120000"
	v2 = "20240101120100"
	v3 = "20240101120200"
)

var testdataFiles = []string{"20240101120000_create_users.sql", "20240101120100_create_projects.sql", "20240101120200_create_tasks.sql"}

func TestWorkColdThenUpToDate(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	m := New(loadSet(t, "../../testdata/migrations"), Options{})

	status, d, _, err := work(t, m, tn, time.Minute)
	if err != nil || status != fleet.Succeeded {
		t.Fatalf("cold migrate: %s, %v", status, err)
	}
	if d.From != "" || d.To != v3 || fmt.Sprint(d.Applied) != fmt.Sprint(testdataFiles) || len(d.Pending) != 0 || d.FailedFile != "" {
		t.Errorf("cold detail %+v", d)
	}
	if got := recorded(t, tn.URL, "schema_migrations"); fmt.Sprint(got) != fmt.Sprint([]string{v1, v2, v3}) {
		t.Errorf("recorded versions %v", got)
	}
	for _, table := range []string{"users", "projects", "tasks"} {
		if !exists(t, tn.URL, table) {
			t.Errorf("table %s missing", table)
		}
	}
	for _, f := range testdataFiles {
		if !strings.Contains(d.Log, "Applied: "+f+" ") {
			t.Errorf("dbmate's log lacks %q:\n%s", "Applied: "+f, d.Log)
		}
	}

	status, d, _, err = work(t, m, tn, time.Minute)
	if err != nil || status != fleet.UpToDate {
		t.Fatalf("re-run: %s, %v", status, err)
	}
	if d.From != v3 || d.To != v3 || len(d.Applied) != 0 || len(d.Pending) != 0 || d.Log != "" {
		t.Errorf("re-run detail %+v", d)
	}
	if got := recorded(t, tn.URL, "schema_migrations"); len(got) != 3 {
		t.Errorf("recorded versions after re-run %v", got)
	}
}

func TestWorkPartThenRest(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	full := "../../testdata/migrations"
	first := t.TempDir()
	body, err := os.ReadFile(filepath.Join(full, testdataFiles[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(first, testdataFiles[0]), body, 0o644); err != nil {
		t.Fatal(err)
	}
	if status, d, _, err := work(t, New(loadSet(t, first), Options{}), tn, time.Minute); err != nil || status != fleet.Succeeded || d.To != v1 {
		t.Fatalf("first file: %s, %v, %+v", status, err, d)
	}
	status, d, _, err := work(t, New(loadSet(t, full), Options{}), tn, time.Minute)
	if err != nil || status != fleet.Succeeded {
		t.Fatalf("the rest: %s, %v", status, err)
	}
	if d.From != v1 || d.To != v3 || fmt.Sprint(d.Applied) != fmt.Sprint(testdataFiles[1:]) || len(d.Pending) != 0 {
		t.Errorf("detail %+v", d)
	}
}

func TestWorkFailingFileRollsBack(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	dir := migrationsDir(t, map[string]string{
		"1_a.sql": "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
		"2_b.sql": "-- migrate:up\nCREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\nINSERT INTO no_such_table VALUES (1);\n-- migrate:down\nDROP TABLE b;\n",
		"3_c.sql": "-- migrate:up\nCREATE TABLE c (id int);\n-- migrate:down\nDROP TABLE c;\n",
	})
	m := New(loadSet(t, dir), Options{})
	status, d, _, err := work(t, m, tn, time.Minute)
	if err == nil || status == fleet.Succeeded || status == fleet.UpToDate {
		t.Fatalf("a failing file: status %q, err %v", status, err)
	}
	if !strings.Contains(err.Error(), "2_b.sql") || !strings.Contains(err.Error(), `relation "no_such_table" does not exist`) {
		t.Errorf("error %q should name the file and the SQL error", err)
	}
	if d.From != "" || d.To != "1" || fmt.Sprint(d.Applied) != "[1_a.sql]" || fmt.Sprint(d.Pending) != "[2_b.sql 3_c.sql]" || d.FailedFile != "2_b.sql" {
		t.Errorf("detail %+v", d)
	}
	// The failed file's transaction rolled back: the tenant is left at the
	// last good version, with nothing of the failed file.
	if got := recorded(t, tn.URL, "schema_migrations"); fmt.Sprint(got) != "[1]" {
		t.Errorf("recorded versions %v", got)
	}
	if !exists(t, tn.URL, "a") || exists(t, tn.URL, "b") || exists(t, tn.URL, "c") {
		t.Errorf("tables: a %v, b %v, c %v; want only a", exists(t, tn.URL, "a"), exists(t, tn.URL, "b"), exists(t, tn.URL, "c"))
	}
	// dbmate prints "Applied: <file>" before it knows the file failed: that
	// line must not reach the log.
	if strings.Contains(d.Log, "Applied: 2_b.sql") || !strings.Contains(d.Log, "Applied: 1_a.sql") || !strings.Contains(d.Log, "Applying: 2_b.sql") {
		t.Errorf("log:\n%s", d.Log)
	}
	lines := strings.Join(d.LogLines(), "\n")
	if strings.Contains(lines, "Applied: 2_b.sql") || !strings.Contains(lines, "left at version 1, 2 still pending (first: 2_b.sql)") {
		t.Errorf("log lines:\n%s", lines)
	}

	// Fixed, the next run picks up at the failed file.
	if err := os.WriteFile(filepath.Join(dir, "2_b.sql"), []byte("-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	status, d, _, err = work(t, New(loadSet(t, dir), Options{}), tn, time.Minute)
	if err != nil || status != fleet.Succeeded || d.From != "1" || d.To != "3" || fmt.Sprint(d.Applied) != "[2_b.sql 3_c.sql]" {
		t.Errorf("after the fix: %s, %v, %+v", status, err, d)
	}
}

func TestWorkDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	set := loadSet(t, "../../testdata/migrations")
	dry := New(set, Options{DryRun: true})

	status, d, _, err := work(t, dry, tn, time.Minute)
	if err != nil || status != fleet.Succeeded {
		t.Fatalf("dry run on a fresh tenant: %s, %v", status, err)
	}
	if !d.DryRun || d.From != "" || d.To != "" || len(d.Applied) != 0 || fmt.Sprint(d.Pending) != fmt.Sprint(testdataFiles) || d.FailedFile != "" {
		t.Errorf("dry-run detail %+v", d)
	}
	if got := d.Cells(); fmt.Sprint(got) != "[none "+v3+" 3: "+strings.Join(testdataFiles, ", ")+"]" {
		t.Errorf("dry-run cells %q", got)
	}
	// Not even the migrations table.
	for _, rel := range []string{"schema_migrations", "users"} {
		if exists(t, tn.URL, rel) {
			t.Errorf("a dry run created %s", rel)
		}
	}

	// Part-way: pending is what is left; up to date: nothing to do.
	if _, _, _, err := work(t, New(loadSet(t, "../../testdata/migrations"), Options{}), tn, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := pgcluster.Connect(t, tn.URL).Exec(context.Background(), "DELETE FROM schema_migrations WHERE version = $1", v3); err != nil {
		t.Fatal(err)
	}
	status, d, _, err = work(t, dry, tn, time.Minute)
	if err != nil || status != fleet.Succeeded || d.From != v2 || fmt.Sprint(d.Pending) != "["+testdataFiles[2]+"]" {
		t.Errorf("dry run, one pending: %s, %v, %+v", status, err, d)
	}
	if got := recorded(t, tn.URL, "schema_migrations"); len(got) != 2 {
		t.Errorf("a dry run recorded versions: %v", got)
	}
	if _, err := pgcluster.Connect(t, tn.URL).Exec(context.Background(), "INSERT INTO schema_migrations (version) VALUES ($1)", v3); err != nil {
		t.Fatal(err)
	}
	if status, d, _, err := work(t, dry, tn, time.Minute); err != nil || status != fleet.UpToDate || len(d.Pending) != 0 {
		t.Errorf("dry run, up to date: %s, %v, %+v", status, err, d)
	}
}

func TestWorkWaitsForTheLock(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	set := loadSet(t, "../../testdata/migrations")
	holder := pgcluster.Connect(t, tn.URL)
	ctx := context.Background()
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", LockKey("schema_migrations")); err != nil {
		t.Fatal(err)
	}

	// Held for longer than run-lock-wait: the tenant fails, saying so, and
	// nothing is applied.
	const lockTimeout = 700 * time.Millisecond
	status, _, elapsed, err := work(t, New(set, Options{RunLockWait: lockTimeout}), tn, time.Minute)
	if err == nil || status == fleet.Succeeded {
		t.Fatalf("lock held: status %q, err %v", status, err)
	}
	if !strings.Contains(err.Error(), "run-lock-wait (700ms)") {
		t.Errorf("error %q should name run-lock-wait", err)
	}
	if elapsed < lockTimeout || elapsed > lockTimeout+5*time.Second {
		t.Errorf("gave up after %s, want about %s", elapsed, lockTimeout)
	}
	if exists(t, tn.URL, "schema_migrations") {
		t.Errorf("migrated without the lock")
	}

	// Another table's lock is another key: not blocked.
	if LockKey("schema_migrations") == LockKey("other_migrations") {
		t.Fatal("lock keys of two tables are equal")
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "1_x.sql"), []byte("-- migrate:up\nCREATE TABLE x (id int);\n-- migrate:down\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, _, _, err := work(t, New(loadSet(t, other), Options{Table: "other_migrations", RunLockWait: lockTimeout}), tn, time.Minute); err != nil || status != fleet.Succeeded {
		t.Errorf("another table's lock: %s, %v", status, err)
	}

	// Released while waiting: the tenant goes ahead.
	const holdFor = 500 * time.Millisecond
	released := make(chan error, 1)
	held := time.Now()
	go func() {
		time.Sleep(holdFor)
		_, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", LockKey("schema_migrations"))
		released <- err
	}()
	status, d, _, err := work(t, New(set, Options{RunLockWait: 20 * time.Second}), tn, time.Minute)
	waited := time.Since(held)
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if err != nil || status != fleet.Succeeded || d.To != v3 {
		t.Fatalf("lock released: %s, %v, %+v", status, err, d)
	}
	if waited < holdFor {
		t.Errorf("finished %s after the lock was taken, before it was released (%s)", waited, holdFor)
	}

	// The lock goes with the session: once Work has returned, the holder
	// can take it again. (Closing the connection ends the backend
	// asynchronously, so allow it a moment.)
	var got bool
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := holder.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", LockKey("schema_migrations")).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got || time.Now().After(deadline) {
			break
		}
	}
	if !got {
		t.Errorf("the migration lock is still held 5s after Work returned")
	}
}

// lock-timeout bounds the wait for the migration lock only: a migration
// that waits on a table lock for longer still runs.
func TestWorkLockTimeoutIsNotTheMigrationsTimeout(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	ctx := context.Background()
	holder := pgcluster.Connect(t, tn.URL)
	if _, err := holder.Exec(ctx, "CREATE TABLE busy (x int)"); err != nil {
		t.Fatal(err)
	}
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE busy IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const holdFor = 1500 * time.Millisecond
	committed := make(chan error, 1)
	locked := time.Now()
	time.AfterFunc(holdFor, func() { committed <- tx.Commit(ctx) })
	defer func() {
		if err := <-committed; err != nil {
			t.Error(err)
		}
	}()
	dir := migrationsDir(t, map[string]string{"1_alter.sql": "-- migrate:up\nALTER TABLE busy ADD COLUMN y int;\n-- migrate:down\n"})
	status, _, _, err := work(t, New(loadSet(t, dir), Options{RunLockWait: 300 * time.Millisecond}), tn, time.Minute)
	waited := time.Since(locked)
	if err != nil || status != fleet.Succeeded {
		t.Fatalf("a migration waiting %s on a table lock with lock-timeout 300ms: %s, %v", holdFor, status, err)
	}
	if waited < holdFor {
		t.Errorf("finished %s after the table was locked, before it was released (%s)", waited, holdFor)
	}
}

func TestWorkStopsWhenTimeIsUp(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	dir := migrationsDir(t, map[string]string{
		"1_a.sql":    "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
		"2_slow.sql": "-- migrate:up\nCREATE TABLE slow_marker (x int);\nSELECT pg_sleep(30);\n-- migrate:down\nDROP TABLE slow_marker;\n",
	})
	m := New(loadSet(t, dir), Options{})

	const timeout = 1500 * time.Millisecond
	status, d, elapsed, err := work(t, m, tn, timeout)
	if err == nil || status == fleet.Succeeded {
		t.Fatalf("status %q, err %v", status, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q should be the deadline", err)
	}
	if elapsed > timeout+5*time.Second {
		t.Errorf("Work returned %s after its deadline, want promptly", elapsed-timeout)
	}
	if d.From != "" || d.To != "1" || fmt.Sprint(d.Applied) != "[1_a.sql]" || fmt.Sprint(d.Pending) != "[2_slow.sql]" {
		t.Errorf("detail %+v", d)
	}
	if got := recorded(t, tn.URL, "schema_migrations"); fmt.Sprint(got) != "[1]" {
		t.Errorf("recorded versions %v, want the tenant left at 1", got)
	}
	if exists(t, tn.URL, "slow_marker") {
		t.Errorf("the interrupted file's transaction was not rolled back")
	}
	if strings.Contains(d.Log, "Applied: 2_slow.sql") {
		t.Errorf("log claims the stopped file:\n%s", d.Log)
	}

	// No backend of the tenant's session is left, none running the
	// statement. (The test's own connections, open until it ends, have
	// no application_name; pgfleet's are "pgfleet".)
	admin := pgcluster.Connect(t, cluster.Cluster(t).AdminURL("postgres"))
	var left int
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := admin.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND (application_name = 'pgfleet' OR query ILIKE '%pg_sleep%')", tn.ID).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if left != 0 {
		t.Errorf("%d backends of the tenant still running after Work returned", left)
	}

	// A cancelled context (a cancelled run) stops it the same way.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	_, _, err = m.Work(ctx, tn)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 6*time.Second {
		t.Errorf("cancelled: %v after %s", err, time.Since(start))
	}
	if got := recorded(t, tn.URL, "schema_migrations"); fmt.Sprint(got) != "[1]" {
		t.Errorf("recorded versions after cancel %v", got)
	}
}

func TestWorkSchemaQualifiedTable(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	const table = "myschema.schema_migrations"
	m := New(loadSet(t, "../../testdata/migrations"), Options{Table: table})
	if m.lock != LockKey(table) {
		t.Errorf("the lock is not the table's")
	}
	status, d, _, err := work(t, m, tn, time.Minute)
	if err != nil || status != fleet.Succeeded || d.To != v3 || len(d.Applied) != 3 {
		t.Fatalf("%s, %v, %+v", status, err, d)
	}
	if !exists(t, tn.URL, table) || exists(t, tn.URL, "public.schema_migrations") {
		t.Errorf("the migrations table should be %s only", table)
	}
	if got := recorded(t, tn.URL, table); fmt.Sprint(got) != fmt.Sprint([]string{v1, v2, v3}) {
		t.Errorf("recorded versions %v", got)
	}
	if !exists(t, tn.URL, "public.users") {
		t.Errorf("the migrations themselves run in the session's schema")
	}
	status, d, _, err = work(t, m, tn, time.Minute)
	if err != nil || status != fleet.UpToDate || d.From != v3 {
		t.Errorf("re-run: %s, %v, %+v", status, err, d)
	}
	// The default table knows nothing of these: a run with it starts over
	// (and fails, the tables existing), proving the two are separate.
	if _, d, _, err := work(t, New(loadSet(t, "../../testdata/migrations"), Options{}), tn, time.Minute); err == nil || d.From != "" {
		t.Errorf("default table: %v, %+v", err, d)
	}
}
