package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// Migrations that are safe on live tenants: transaction:false files run
// statement by statement, statements wait at most lock-timeout for a lock
// and are retried, and a failed CREATE INDEX CONCURRENTLY is named.

const concurrentFile = "29990101000000_concurrent.sql"

// concurrentUp holds three statements: two CREATE INDEX CONCURRENTLY and a
// function whose $$ body holds semicolons, between comments that hold some.
func concurrentUp(third string) string {
	return `-- migrate:up transaction:false
-- two indexes built without blocking writes; each statement ends with ;
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_name_idx ON users (name);
CREATE OR REPLACE FUNCTION user_label(u users) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN u.name || ';' || u.email; -- a ; inside the body
END;
$$;
/* a comment; /* nested; */ still the comment */
` + third + `
-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS users_created_at_idx;
DROP FUNCTION IF EXISTS user_label(users);
DROP INDEX CONCURRENTLY IF EXISTS users_name_idx;
`
}

func validIndex(t *testing.T, url, name string) (valid bool) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT coalesce((SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)), false)", name).Scan(&valid)
	})
	return valid
}

func TestTransactionFalseFileRunsStatementByStatement(t *testing.T) {
	f := newFleet(t, 10, neonapi.Config{})
	dir := migrationsCopy(t, map[string]string{concurrentFile: concurrentUp("CREATE INDEX CONCURRENTLY IF NOT EXISTS users_created_at_idx ON users (created_at);")})
	r := runPgfleet(t, neonInputs(f, dir))
	mustCode(t, r, 0)
	want := append(baseVersions(t), "29990101000000")
	for _, tn := range f.Tenants {
		if !validIndex(t, tn.DB.URL, "users_name_idx") || !validIndex(t, tn.DB.URL, "users_created_at_idx") {
			t.Fatalf("%s: the concurrently built indexes are missing or invalid", tn.ProjectID)
		}
		if got := versions(t, tn.DB.URL); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: versions %v, want %v", tn.ProjectID, got, want)
		}
	}
}

func TestTransactionFalseFailureNamesTheStatementAndResumes(t *testing.T) {
	f := newFleet(t, 3, neonapi.Config{})
	// Statement 3 is on line 10 of the file.
	bad := migrationsCopy(t, map[string]string{concurrentFile: concurrentUp("CREATE INDEX CONCURRENTLY IF NOT EXISTS users_created_at_idx ON no_such_table (created_at);")})
	r := runPgfleet(t, neonInputs(f, bad))
	mustCode(t, r, 1)
	for _, rec := range r.report.Tenants {
		for _, want := range []string{concurrentFile, "statement 3 of 3 (line 10)", "statements 1-2 ran and stay", "no_such_table", "version is not recorded"} {
			if !strings.Contains(rec.Error, want) {
				t.Fatalf("error %q lacks %q", rec.Error, want)
			}
		}
	}
	for _, tn := range f.Tenants {
		if !validIndex(t, tn.DB.URL, "users_name_idx") {
			t.Fatalf("%s: statement 1 ran outside a transaction and should stay", tn.ProjectID)
		}
		if got := versions(t, tn.DB.URL); strings.Join(got, ",") != strings.Join(baseVersions(t), ",") {
			t.Fatalf("%s: versions %v: the failed file must not be recorded", tn.ProjectID, got)
		}
	}
	fixed := migrationsCopy(t, map[string]string{concurrentFile: concurrentUp("CREATE INDEX CONCURRENTLY IF NOT EXISTS users_created_at_idx ON users (created_at);")})
	r = runPgfleet(t, neonInputs(f, fixed))
	mustCode(t, r, 0)
	for _, tn := range f.Tenants {
		if !validIndex(t, tn.DB.URL, "users_created_at_idx") || len(versions(t, tn.DB.URL)) != len(baseVersions(t))+1 {
			t.Fatalf("%s did not converge after the file was fixed", tn.ProjectID)
		}
	}
}

func TestFailedConcurrentIndexNamesTheInvalidIndex(t *testing.T) {
	f := newFleet(t, 3, neonapi.Config{})
	runPgfleet(t, neonInputs(f, "testdata/migrations"))
	dup := f.Tenants[1]
	execSQL(t, dup.DB.URL, "INSERT INTO users (email, name) VALUES ('a@example.com', 'Same'), ('b@example.com', 'Same')")
	dir := migrationsCopy(t, map[string]string{
		concurrentFile: "-- migrate:up transaction:false\nCREATE UNIQUE INDEX CONCURRENTLY users_name_key ON users (name);\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY users_name_key;\n",
	})
	r := runPgfleet(t, neonInputs(f, dir))
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"failed": "1", "succeeded": "2"})
	rec := r.report.Tenants[r.report.byID()[dup.ProjectID]]
	for _, want := range []string{"INVALID index public.users_name_key", "DROP INDEX CONCURRENTLY IF EXISTS public.users_name_key", "statement 1 of 1 (line 2)"} {
		if !strings.Contains(rec.Error, want) {
			t.Fatalf("error %q lacks %q", rec.Error, want)
		}
	}
}

// holdUsers keeps a transaction open that has read users (an ACCESS SHARE
// lock, as any long transaction of the tenant's application would), until
// release is called.
func holdUsers(t *testing.T, url string) (release func()) {
	t.Helper()
	conn := pgcluster.Connect(t, url)
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM users"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { tx.Commit(context.Background()) }) }
	t.Cleanup(release)
	return release
}

// probeUsers queries users from another session, as the tenant's traffic
// would, until stop is closed, and returns the longest one query waited.
func probeUsers(t *testing.T, url string, stop <-chan struct{}) <-chan time.Duration {
	t.Helper()
	conn := pgcluster.Connect(t, url)
	longest := make(chan time.Duration, 1)
	go func() {
		var worst time.Duration
		for {
			select {
			case <-stop:
				longest <- worst
				return
			default:
			}
			began := time.Now()
			if _, err := conn.Exec(context.Background(), "SELECT count(*) FROM users"); err != nil {
				t.Errorf("probe query: %v", err)
			}
			worst = max(worst, time.Since(began))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return longest
}

const addNickname = "29990101000000_add_nickname.sql"

func TestLockTimeoutKeepsTenantTrafficFlowing(t *testing.T) {
	f := newFleet(t, 3, neonapi.Config{})
	mustCode(t, runPgfleet(t, neonInputs(f, "testdata/migrations")), 0)
	locked := f.Tenants[0]
	release := holdUsers(t, locked.DB.URL)
	stop := make(chan struct{})
	longest := probeUsers(t, locked.DB.URL, stop)

	dir := migrationsCopy(t, map[string]string{addNickname: "-- migrate:up\nALTER TABLE users ADD COLUMN nickname text;\n-- migrate:down\nALTER TABLE users DROP COLUMN nickname;\n"})
	in := neonInputs(f, dir)
	in["lock-timeout"] = "1s"
	in["lock-retries"] = "20"
	began := time.Now()
	cmd, stdout, stderr, wd := start(t, in)
	time.AfterFunc(20*time.Second, release)
	r := finish(t, cmd, stdout, stderr, wd, began)
	close(stop)
	worst := <-longest
	mustCode(t, r, 0)
	rec := r.report.Tenants[r.report.byID()[locked.ProjectID]]
	if rec.LockRetries < 3 {
		t.Fatalf("the locked tenant needed %d lock retries in 20 s of a held lock", rec.LockRetries)
	}
	if !columnExists(t, locked.DB.URL, "users", "nickname") {
		t.Fatal("the migration did not apply once the lock was released")
	}
	// Without lock_timeout the probe would wait the whole 20 s behind the
	// ALTER TABLE; with 1 s it waits about 1 s at a time.
	t.Logf("longest wait of the tenant's own query: %s (lock retries %d, run %s)", worst, rec.LockRetries, r.elapsed)
	if worst > 4*time.Second {
		t.Fatalf("a query of the tenant waited %s behind the migration (lock-timeout 1s)", worst)
	}
	if !strings.Contains(r.stdout, "lock retries)") {
		t.Errorf("the log does not mention the lock retries:\n%s", tail(r.stdout, 3000))
	}
}

func TestLockNeverReleasedFailsThatTenantOnly(t *testing.T) {
	f := newFleet(t, 3, neonapi.Config{})
	mustCode(t, runPgfleet(t, neonInputs(f, "testdata/migrations")), 0)
	locked := f.Tenants[2]
	holdUsers(t, locked.DB.URL)
	dir := migrationsCopy(t, map[string]string{addNickname: "-- migrate:up\nALTER TABLE users ADD COLUMN nickname text;\n-- migrate:down\nALTER TABLE users DROP COLUMN nickname;\n"})
	in := neonInputs(f, dir)
	in["lock-timeout"] = "1s"
	in["lock-retries"] = "3"
	in["tenant-timeout"] = "1m"
	r := runPgfleet(t, in)
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"failed": "1", "succeeded": "2"})
	rec := r.report.Tenants[r.report.byID()[locked.ProjectID]]
	if !strings.Contains(rec.Error, "could not get a lock within lock-timeout (1s) in 4 tries") || rec.LockRetries != 3 {
		t.Fatalf("record %+v", rec)
	}
	if columnExists(t, locked.DB.URL, "users", "nickname") || len(versions(t, locked.DB.URL)) != len(baseVersions(t)) {
		t.Fatal("the tenant that never got its lock moved from its old version")
	}
}
