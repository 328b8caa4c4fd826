package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	"github.com/amacneil/dbmate/v2/pkg/dbutil"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/internal/retry"
	"github.com/pgfleet/pgfleet/internal/sqlsplit"
)

// Why pgfleet applies the files itself rather than calling dbmate's
// Migrate: dbmate sends a transaction:false file as one multi-statement
// query, which Postgres runs as one implicit transaction, so two CREATE
// INDEX CONCURRENTLY in one file fail (amacneil/dbmate#182, #285); and
// dbmate cannot retry a file whose statement gave up waiting for a lock.
// dbmate still parses the files and does the bookkeeping SQL (its driver's
// CreateMigrationsTable and InsertMigration), so the migrations table is
// exactly dbmate's and the dbmate CLI keeps working on the same databases.

// lockNotAvailable is Postgres's SQLSTATE when lock_timeout runs out.
const lockNotAvailable = "55P03"

// applyRun is one session's pass over the pending files.
type applyRun struct {
	m       *Migrator
	ctx     context.Context // only for sleeping between lock retries: statements are stopped by session.stop
	drv     dbmate.Driver
	db      *sql.DB
	log     io.Writer
	onFile  func(name string) // a file starts (for progress lines)
	retries atomic.Int32      // lock retries needed, over every file
}

// applyPending applies files in order, each recorded in the same
// transaction as its SQL (a transaction:false file: after its last
// statement). It stops at the first file that fails.
func (r *applyRun) applyPending(files []File) error {
	exists, err := r.drv.MigrationsTableExists(r.db)
	if err == nil && !exists {
		err = r.drv.CreateMigrationsTable(r.db)
	}
	if err != nil {
		return fmt.Errorf("create migrations table %s: %w", r.m.o.Table, err)
	}
	doing, done := "Applying", "Applied"
	if r.m.o.Rollback {
		doing, done = "Rolling back", "Rolled back"
	}
	for _, f := range files {
		fmt.Fprintf(r.log, "%s: %s\n", doing, f.Name)
		if r.onFile != nil {
			r.onFile(f.Name)
		}
		start := time.Now()
		err := r.applyFile(f)
		fmt.Fprintf(r.log, "%s: %s in %s\n", done, f.Name, time.Since(start))
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *applyRun) applyFile(f File) error {
	contents := string(r.m.set.FS()[f.Name].Data)
	mig := dbmate.Migration{FileName: f.Name, FilePath: f.Name, FS: r.m.set.FS(), Version: f.Version}
	sections, err := mig.Parse()
	if err != nil {
		return err
	}
	for _, sec := range sections {
		sql, inTx := sec.Up, sec.UpOptions.Transaction()
		if r.m.o.Rollback {
			sql, inTx = sec.Down, sec.DownOptions.Transaction()
		}
		if inTx {
			err = r.withLockRetries(func() error { return r.inTransaction(sql, f.Version) })
		} else {
			err = r.statementByStatement(f, sql, lineOf(contents, sql))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// record adds the file's version to the migrations table, or removes it
// when rolling back.
func (r *applyRun) record(db dbutil.Transaction, version string) error {
	if r.m.o.Rollback {
		return r.drv.DeleteMigration(db, version)
	}
	return r.drv.InsertMigration(db, version)
}

// inTransaction runs a file's section and records its version in one
// transaction: it commits whole or not at all.
func (r *applyRun) inTransaction(up, version string) error {
	tx, err := r.db.Begin()
	if err != nil {
		return err
	}
	if _, err := tx.Exec(up); err != nil {
		tx.Rollback()
		if isLockTimeout(err) {
			return err // as it is, for withLockRetries (dbmate's QueryError does not unwrap)
		}
		return r.drv.QueryError(up, err)
	}
	if err := r.record(tx, version); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// statementByStatement runs a transaction:false section one statement at a
// time, as psql runs a file, each retried alone when it cannot get its
// lock, then records the version.
func (r *applyRun) statementByStatement(f File, up string, firstLine int) error {
	stmts := sqlsplit.Split(up)
	var invalidBefore []string
	if concurrentIndex.MatchString(up) {
		invalidBefore, _ = r.invalidIndexes()
	}
	for k, st := range stmts {
		err := r.withLockRetries(func() error {
			_, err := r.db.Exec(st.SQL)
			return err
		})
		if err != nil {
			serr := &StatementError{File: f.Name, Number: k + 1, Total: len(stmts), Line: firstLine + st.Line - 1, Rollback: r.m.o.Rollback, Err: err}
			if concurrentIndex.MatchString(st.SQL) {
				if now, qerr := r.invalidIndexes(); qerr == nil {
					for _, ix := range now {
						if !slices.Contains(invalidBefore, ix) {
							serr.InvalidIndexes = append(serr.InvalidIndexes, ix)
						}
					}
				}
			}
			return serr
		}
	}
	return r.record(r.db, f.Version)
}

var concurrentIndex = regexp.MustCompile(`(?i)\bindex\s+concurrently\b`)

// invalidIndexes lists the indexes Postgres marks INVALID: what a failed
// CREATE INDEX CONCURRENTLY leaves behind.
func (r *applyRun) invalidIndexes() ([]string, error) {
	rows, err := r.db.Query(`SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE NOT i.indisvalid ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// withLockRetries runs do again, after a backoff with jitter, each time a
// statement gave up waiting for a lock (lock_timeout): the tenant's own
// traffic queues behind a waiting ALTER TABLE, so pgfleet waits a short
// while, lets go, and comes back, up to lock-retries times, within the
// tenant's time.
func (r *applyRun) withLockRetries(do func() error) error {
	for try := 0; ; try++ {
		err := do()
		if !isLockTimeout(err) {
			return err
		}
		if try >= r.m.o.LockRetries {
			return &LockError{Tries: try + 1, Timeout: r.m.o.StatementLockTimeout, Err: err}
		}
		wait := lockBackoff.Delay(try + 1)
		fmt.Fprintf(r.log, "lock_timeout: a statement waited more than %s for a lock; retry %d of %d in %s\n",
			r.m.o.StatementLockTimeout, try+1, r.m.o.LockRetries, wait.Round(time.Millisecond))
		r.retries.Add(1)
		if err := retry.Sleep(r.ctx, wait); err != nil { // the tenant's time is up
			return fmt.Errorf("%w while waiting to retry a statement that could not get its lock", err)
		}
	}
}

// lockBackoff is 0.5 s doubling to at most 8 s, each drawn from 50-100%
// so that tenants blocked by one cause do not come back in step.
var lockBackoff = retry.Backoff{Base: 500 * time.Millisecond, Max: 8 * time.Second, Jitter: retry.HalfJitter}

func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == lockNotAvailable
}

// LockError is a statement that never got its lock.
type LockError struct {
	Tries   int
	Timeout time.Duration
	Err     error
}

func (e *LockError) Error() string {
	return fmt.Sprintf("could not get a lock within lock-timeout (%s) in %d tries, the last: %v; the file was rolled back (another session holds a lock on its table: a long transaction of the application?)", e.Timeout, e.Tries, e.Err)
}

func (e *LockError) Unwrap() error { return e.Err }

// StatementError is a statement of a transaction:false file that failed.
type StatementError struct {
	File           string
	Number, Total  int // 1-based, of the file's statements
	Line           int // in the file
	InvalidIndexes []string
	Rollback       bool // a down section
	Err            error
}

func (e *StatementError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: statement %d of %d (line %d) failed: %v", e.File, e.Number, e.Total, e.Line, e.Err)
	switch e.Number {
	case 1:
		b.WriteString("; nothing of the file ran")
	case 2:
		b.WriteString("; statement 1 ran and stays")
	default:
		fmt.Fprintf(&b, "; statements 1-%d ran and stay", e.Number-1)
	}
	if e.Rollback {
		b.WriteString(" (a transaction:false down section runs outside a transaction) and the version stays recorded: the next rollback runs the section again from its first statement, so write its statements to run twice (IF EXISTS)")
	} else {
		b.WriteString(" (a transaction:false file runs outside a transaction) and the version is not recorded: the next run applies the file again from its first statement, so write its statements to run twice (IF NOT EXISTS)")
	}
	for _, ix := range e.InvalidIndexes {
		fmt.Fprintf(&b, "; the failed CREATE INDEX CONCURRENTLY left the INVALID index %s behind: remove it with DROP INDEX CONCURRENTLY IF EXISTS %s; before the next run (IF NOT EXISTS would keep the invalid one)", ix, ix)
	}
	return b.String()
}

func (e *StatementError) Unwrap() error { return e.Err }

// lineOf is the 1-based line of the file on which section starts.
func lineOf(contents, section string) int {
	i := strings.Index(contents, section)
	if i < 0 {
		return 1
	}
	return 1 + strings.Count(contents[:i], "\n")
}

// runningFiles is the file each tenant is applying and since when, so a
// progress line can say where a long run stands.
type runningFiles struct {
	mu    sync.Mutex
	files map[string]runningFile // by tenant
}

type runningFile struct {
	file  string
	since time.Time
}

func newRunningFiles() *runningFiles { return &runningFiles{files: map[string]runningFile{}} }

func (r *runningFiles) start(tenant, file string) {
	r.mu.Lock()
	r.files[tenant] = runningFile{file, time.Now()}
	r.mu.Unlock()
}

func (r *runningFiles) done(tenant string) {
	r.mu.Lock()
	delete(r.files, tenant)
	r.mu.Unlock()
}

// longest is "acme 20240101_add_index.sql 2m10s, ..." for the n tenants
// whose current file has run longest.
func (r *runningFiles) longest(n int) string {
	r.mu.Lock()
	type entry struct {
		tenant string
		runningFile
	}
	all := make([]entry, 0, len(r.files))
	for t, f := range r.files {
		all = append(all, entry{t, f})
	}
	r.mu.Unlock()
	slices.SortFunc(all, func(a, b entry) int { return a.since.Compare(b.since) })
	parts := make([]string, 0, n)
	for _, e := range all[:min(n, len(all))] {
		parts = append(parts, fmt.Sprintf("%s %s %s", e.tenant, e.file, time.Since(e.since).Round(time.Second)))
	}
	return strings.Join(parts, ", ")
}
