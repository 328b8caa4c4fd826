package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"strings"
	"time"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/retry"
	"github.com/pgfleet/pgfleet/internal/syncio"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Options tune how each tenant is migrated.
type Options struct {
	Table       string        // migrations table; default schema_migrations
	LockTimeout time.Duration // how long to wait for another run's lock; default 1m
	DryRun      bool          // report pending files, change nothing
	Connect     pgconnect.Options
}

// Migrator migrates tenants to the files of one validated Set.
type Migrator struct {
	set  *Set
	o    Options
	lock int64
}

// New returns a Migrator for set.
func New(set *Set, o Options) *Migrator {
	if o.Table == "" {
		o.Table = "schema_migrations"
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Minute
	}
	return &Migrator{set: set, o: o, lock: LockKey(o.Table)}
}

// LockKey is the advisory lock every pgfleet run migrating this table takes
// (exported so operators and tests can hold it by hand).
// It is derived from the table name so two fleets sharing a database with
// different tables do not block each other.
func LockKey(table string) int64 {
	h := fnv.New64a()
	h.Write([]byte("pgfleet/migrate/" + table))
	return int64(h.Sum64())
}

// Work brings one tenant to the latest migration: one session, the
// advisory lock taken on it, versions read, dbmate run on the same session,
// versions read again. When ctx ends (tenant-timeout, cancelled run) the
// session is stopped: the statement in flight is cancelled, dbmate's open
// transaction rolls back, and the tenant stays at its last good version.
// A dropped connection is retried from the top: the lock makes that safe,
// and dbmate picks up at the first file not recorded.
func (m *Migrator) Work(ctx context.Context, t tenant.Tenant) (fleet.Status, fleet.Detail, error) {
	attempts := max(m.o.Connect.Attempts, 1)
	var (
		status fleet.Status
		d      *Detail
		err    error
	)
	for attempt := 1; ; attempt++ {
		status, d, err = m.migrateOnce(ctx, t)
		if err == nil || !pgconnect.Transient(err) || ctx.Err() != nil || attempt >= attempts {
			return status, d, err
		}
		if retry.Sleep(ctx, m.o.Connect.Backoff(attempt)) != nil {
			return status, d, err
		}
	}
}

func (m *Migrator) migrateOnce(ctx context.Context, t tenant.Tenant) (fleet.Status, *Detail, error) {
	d := &Detail{DryRun: m.o.DryRun, Applied: []string{}, Pending: []string{}}
	s, err := m.open(ctx, t.URL)
	if err != nil {
		return "", d, err
	}
	// Closing the session also releases the advisory lock.
	defer s.close()

	exists, schema, err := m.lockAndLook(ctx, s.pgx())
	if err != nil {
		return "", d, err
	}
	s.schema = schema
	before := map[string]bool{}
	if exists {
		if before, err = m.versions(ctx, s.pgx()); err != nil {
			return "", d, err
		}
	}
	d.From, d.To = highest(before), highest(before)
	pending := m.set.Pending(before)
	d.Pending = names(pending)
	if len(pending) == 0 {
		return fleet.UpToDate, d, nil
	}
	if m.o.DryRun {
		return fleet.Succeeded, d, nil
	}

	runErr, finished := m.runDbmate(ctx, s, d)
	if !finished {
		return "", d, runErr
	}
	after := maps.Clone(before)
	if runErr == nil {
		// dbmate applied every pending file, each recorded in its own
		// transaction: no need to ask the database again.
		for _, f := range pending {
			after[f.Version] = true
		}
	} else {
		// Read where the tenant stands now, even if ctx is over: the report
		// must say which version a failed or stopped tenant was left at.
		if after, err = m.appliedAfterStop(s); err != nil {
			return "", d, errors.Join(runErr, fmt.Errorf("read applied versions after migrating: %w", err))
		}
	}
	d.To = highest(after)
	d.Applied, d.Pending = []string{}, []string{}
	for _, f := range pending {
		if after[f.Version] {
			d.Applied = append(d.Applied, f.Name)
		} else {
			d.Pending = append(d.Pending, f.Name)
		}
	}
	if runErr != nil {
		if len(d.Pending) > 0 {
			d.FailedFile = d.Pending[0]
			d.Log = dropLine(d.Log, "Applied: "+d.FailedFile+" ")
			return "", d, fmt.Errorf("%s: %w", d.FailedFile, runErr)
		}
		return "", d, runErr
	}
	return fleet.Succeeded, d, nil
}

// open connects the tenant's session, retrying a compute that is waking up.
func (m *Migrator) open(ctx context.Context, rawURL string) (*session, error) {
	cfg, err := pgconnect.Config(rawURL, m.o.Connect)
	if err != nil {
		return nil, err
	}
	connector := stdlib.GetConnector(*cfg)
	var s *session
	err = pgconnect.Retry(ctx, m.o.Connect, rawURL, func(ctx context.Context) error {
		dc, err := connector.Connect(ctx)
		if err != nil {
			return err
		}
		s = &session{conn: dc.(*stdlib.Conn), table: m.o.Table}
		return nil
	})
	return s, err
}

// lockAndLook waits up to lock-timeout for the tenant's migration lock,
// then says whether the migrations table exists and what the session's
// current schema is (where dbmate will look for an unqualified table), all
// in one round trip: on a fleet, round trips per tenant add up. lock_timeout
// is reset so it does not apply to the migrations themselves.
func (m *Migrator) lockAndLook(ctx context.Context, conn *pgx.Conn) (exists bool, schema string, err error) {
	batch := fmt.Sprintf("SET lock_timeout = %d; SELECT pg_advisory_lock(%d); RESET lock_timeout; SELECT to_regclass(%s) IS NOT NULL, current_schema()",
		m.o.LockTimeout.Milliseconds(), m.lock, quoteLiteral(m.ident()))
	results, err := conn.PgConn().Exec(ctx, batch).ReadAll()
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
			return false, "", fmt.Errorf("another migration run held this tenant's migration lock for longer than lock-timeout (%s)", m.o.LockTimeout)
		}
		return false, "", fmt.Errorf("take migration lock: %w", err)
	}
	look := results[len(results)-1].Rows
	if len(look) != 1 || len(look[0]) != 2 {
		return false, "", fmt.Errorf("look for migrations table %s: unexpected answer", m.o.Table)
	}
	return string(look[0][0]) == "t", string(look[0][1]), nil // text format; a NULL schema reads as ""
}

// ident is the migrations table as a quoted SQL identifier.
func (m *Migrator) ident() string {
	return pgx.Identifier(strings.Split(m.o.Table, ".")).Sanitize()
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// applied reads the versions recorded in the migrations table (none if it
// does not exist yet).
func (m *Migrator) applied(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", m.ident()).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for migrations table %s: %w", m.o.Table, err)
	}
	if !exists {
		return map[string]bool{}, nil
	}
	return m.versions(ctx, conn)
}

// versions reads the migrations table, which must exist.
func (m *Migrator) versions(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	rows, err := conn.Query(ctx, "SELECT version::text FROM "+m.ident())
	if err != nil {
		return nil, fmt.Errorf("read migrations table %s: %w", m.o.Table, err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read migrations table %s: %w", m.o.Table, err)
	}
	out := map[string]bool{}
	for _, v := range versions {
		out[v] = true
	}
	return out, nil
}

// appliedAfterStop reads the versions with a fresh deadline. A cancel
// request sent to stop dbmate can land on this read instead (Postgres
// cancels whatever runs when it arrives), so one failure is retried.
func (m *Migrator) appliedAfterStop(s *session) (map[string]bool, error) {
	var err error
	for try := 0; try < 2; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var out map[string]bool
		out, err = m.applied(ctx, s.pgx())
		cancel()
		if err == nil {
			return out, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}

// runDbmate applies the pending files with dbmate on the session. dbmate
// takes no context, so when ctx ends the session is stopped under it.
// finished is false if dbmate did not return even then; the session must
// not be used again.
func (m *Migrator) runDbmate(ctx context.Context, s *session, d *Detail) (err error, finished bool) {
	id := randomHex(8)
	sessions.Store(id, s)
	defer sessions.Delete(id)

	db := dbmate.New(sessionURL(id, s.schema))
	db.AutoDumpSchema = false // no pg_dump after migrating: pgfleet keeps no schema.sql, and pg_dump may not be installed
	db.FS = m.set.fsys
	db.MigrationsDir = []string{"."}
	db.MigrationsTableName = m.o.Table
	log := syncio.NewBuffer()
	db.Log = log
	defer func() { d.Log += log.String() }()

	done := make(chan error, 1)
	go func() { done <- db.Migrate() }()
	select {
	case err := <-done:
		return err, true
	case <-ctx.Done():
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.stop(cctx)
	select {
	case err := <-done:
		if err == nil {
			err = errStopped
		}
		return fmt.Errorf("%w (%v)", ctx.Err(), err), true
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%w: dbmate did not return within 10s of its statement being cancelled", ctx.Err()), false
	}
}

// dropLine removes the log line starting with prefix. dbmate prints
// "Applied: <file> in <time>" before it checks whether the file failed.
func dropLine(log, prefix string) string {
	var keep []string
	for _, l := range strings.SplitAfter(log, "\n") {
		if !strings.HasPrefix(l, prefix) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

func names(files []File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Name
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
