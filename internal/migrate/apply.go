package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/syncio"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Options tune how each tenant is migrated.
type Options struct {
	Table string // migrations table; default schema_migrations
	// Rollback undoes, newest first, the applied files above RollbackTo
	// ("" = all) with their down sections, instead of applying what is
	// pending: the same session, lock and loop in the other direction.
	Rollback    bool
	RollbackTo  string
	RunLockWait time.Duration // how long to wait for another run's advisory lock; default 1m
	// StatementLockTimeout is Postgres's lock_timeout for the migrations'
	// statements (0: none): how long a statement may wait for a table's
	// lock, while the tenant's own queries queue behind it, before it
	// gives up and is retried after a pause, at most LockRetries times.
	StatementLockTimeout time.Duration
	LockRetries          int
	DryRun               bool // report pending files, change nothing
	Connect              pgconnect.Options
}

// Migrator migrates tenants to the files of one validated Set.
type Migrator struct {
	set     *Set
	o       Options
	lock    int64
	running *runningFiles // the file each tenant is applying now, for progress lines
}

// New returns a Migrator for set.
func New(set *Set, o Options) *Migrator {
	if o.Table == "" {
		o.Table = "schema_migrations"
	}
	if o.RunLockWait <= 0 {
		o.RunLockWait = time.Minute
	}
	return &Migrator{set: set, o: o, lock: LockKey(o.Table), running: newRunningFiles()}
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

// sessionAttempts is how many times a tenant's session is opened when the
// connection drops under it (a terminated backend, a restarting server, the
// network): each retry starts from the top, which the lock makes safe, and
// dbmate continues at the first file not recorded.
const sessionAttempts = 3

// errConnLost marks a session whose connection dropped: worth a retry.
var errConnLost = errors.New("the connection to the tenant was lost")

// attempt is what one session learned.
type attempt struct {
	status      fleet.Status
	before      map[string]bool // versions when the lock was taken; nil if never read
	after       map[string]bool // versions when the session ended; nil if unknown
	log         string          // what was applied, and lock retries
	lockRetries int
	err         error
}

// Work brings one tenant to the latest migration: one session, the
// advisory lock taken on it, versions read, dbmate run on the same session,
// versions read again. When ctx ends (tenant-timeout, cancelled run) the
// session is stopped: the statement in flight is cancelled, dbmate's open
// transaction rolls back, and the tenant stays at its last good version.
// A dropped connection is retried from the top, within the tenant's time.
// However it ends, the detail states the versions the database really
// holds, read on a fresh connection if the session is gone.
func (m *Migrator) Work(ctx context.Context, t tenant.Tenant) (fleet.Status, fleet.Detail, error) {
	var (
		first       map[string]bool // versions before the run, from the first session that read them
		last        attempt
		logs        strings.Builder
		tries       int
		lockRetries int
	)
	for tries = 1; ; tries++ {
		last = m.migrateOnce(ctx, t)
		logs.WriteString(last.log)
		lockRetries += last.lockRetries
		if first == nil {
			first = last.before
		}
		// Connecting has retried transient failures already (open); what
		// is left to retry here is a session that dropped once connected.
		if last.err == nil || !errors.Is(last.err, errConnLost) || ctx.Err() != nil || tries >= sessionAttempts {
			break
		}
		if m.o.Connect.Backoff().Wait(ctx, tries) != nil {
			break
		}
	}
	after := last.after
	if last.err != nil && after == nil && first != nil {
		// The session is gone: ask the database on a fresh connection,
		// even if ctx is over, so the report says where the tenant stands.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		after, _ = m.appliedFresh(rctx, t.URL)
		cancel()
	}
	if first == nil {
		// Never connected or never got the lock: the versions are unknown,
		// and the report says so (no detail) rather than "none".
		return "", nil, last.err
	}
	d := m.detail(first, after, logs.String())
	d.Attempts = tries
	d.LockRetries = lockRetries
	if last.err == nil {
		return last.status, d, nil
	}
	if d.FailedFile != "" && !strings.Contains(last.err.Error(), d.FailedFile) {
		return "", d, fmt.Errorf("%s: %w", d.FailedFile, last.err)
	}
	return "", d, last.err
}

// detail describes the tenant from the versions before the run and after
// it (nil when unknown). dbmate prints "Applied: <file>" before it knows the
// file's transaction committed, so the lines of files the database does not
// hold are dropped: no log line claims a file that was rolled back.
func (m *Migrator) detail(before, after map[string]bool, log string) *Detail {
	d := &Detail{DryRun: m.o.DryRun, Rollback: m.o.Rollback, Target: m.o.RollbackTo, Applied: []string{}, Pending: []string{}}
	if m.o.Rollback {
		d.RolledBack = []string{}
	}
	if before == nil {
		d.Log = log
		return d
	}
	d.From = highest(before)
	known := after != nil
	if !known {
		after = before // unknown: claim nothing beyond what was there
	}
	d.To = highest(after)
	log = m.sortFiles(d, before, after, log)
	if !m.o.DryRun && len(d.Pending) > 0 {
		d.FailedFile = d.Pending[0]
	}
	if !known {
		d.To = ""
		log += "version after the run unknown: the database could not be read\n"
	}
	d.Log = log
	return d
}

// sortFiles puts each file the run was about into d's lists: done by this
// run (Applied, or RolledBack newest first) or still to do (Pending). The
// log lines of files the database does not show done are dropped.
func (m *Migrator) sortFiles(d *Detail, before, after map[string]bool, log string) string {
	if m.o.Rollback {
		undo, _ := m.set.Above(before, m.o.RollbackTo)
		for _, f := range undo {
			if after[f.Version] {
				d.Pending = append(d.Pending, f.Name)
				log = dropLine(log, "Rolled back: "+f.Name+" ")
			} else {
				d.RolledBack = append(d.RolledBack, f.Name)
			}
		}
		return log
	}
	for _, f := range m.set.Files {
		switch {
		case !after[f.Version]:
			d.Pending = append(d.Pending, f.Name)
			log = dropLine(log, "Applied: "+f.Name+" ")
		case !before[f.Version]:
			d.Applied = append(d.Applied, f.Name)
		}
	}
	return log
}

// migrateOnce runs one session: lock, versions, dbmate, versions.
func (m *Migrator) migrateOnce(ctx context.Context, t tenant.Tenant) (a attempt) {
	s, err := m.open(ctx, t.URL)
	if err != nil {
		a.err = err
		return a
	}
	// Closing the session also releases the advisory lock.
	defer s.close()
	defer func() {
		if a.err != nil && s.pgx().IsClosed() && !errors.Is(a.err, errConnLost) {
			a.err = fmt.Errorf("%w: %w", errConnLost, a.err)
		}
	}()

	exists, schema, err := m.lockAndLook(ctx, s.pgx())
	if err != nil {
		a.err = err
		return a
	}
	s.schema = schema
	a.before = map[string]bool{}
	if exists {
		if a.before, err = m.versions(ctx, s.pgx()); err != nil {
			a.before, a.err = nil, err
			return a
		}
	}
	pending := m.set.Pending(a.before)
	if m.o.Rollback {
		var missing []string
		if pending, missing = m.set.Above(a.before, m.o.RollbackTo); len(missing) > 0 {
			a.after = a.before
			a.err = fmt.Errorf("version %s is applied above rollback-to %s, and its file is not in %s: nothing can undo it, so the tenant was not touched", strings.Join(missing, ", "), versionCell(m.o.RollbackTo), m.set.Dir)
			return a
		}
	}
	switch {
	case len(pending) == 0:
		a.status, a.after = fleet.UpToDate, a.before
		return a
	case m.o.DryRun:
		a.status, a.after = fleet.Succeeded, a.before
		return a
	}

	runErr, finished := m.runFiles(ctx, s, t, pending, &a)
	if !finished {
		a.err = runErr
		return a
	}
	if runErr == nil {
		// Every file was applied (or rolled back), each recorded in its
		// own transaction: no need to ask the database again.
		a.after = maps.Clone(a.before)
		for _, f := range pending {
			a.after[f.Version] = !m.o.Rollback
			if m.o.Rollback {
				delete(a.after, f.Version)
			}
		}
		a.status = fleet.Succeeded
		return a
	}
	a.err = runErr
	if !s.pgx().IsClosed() {
		// Read where the tenant stands now, even if ctx is over.
		a.after, _ = m.appliedAfterStop(s)
	}
	return a
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

// lockAndLook waits up to run-lock-wait for the tenant's migration lock,
// then says whether the migrations table exists and what the session's
// current schema is (where dbmate will look for an unqualified table), all
// in one round trip: on a fleet, round trips per tenant add up. lock_timeout
// is then set to the migrations' own (lock-timeout), which the session keeps.
func (m *Migrator) lockAndLook(ctx context.Context, conn *pgx.Conn) (exists bool, schema string, err error) {
	batch := fmt.Sprintf("SET lock_timeout = %d; SELECT pg_advisory_lock(%d); SET lock_timeout = %d; SELECT to_regclass(%s) IS NOT NULL, current_schema()",
		m.o.RunLockWait.Milliseconds(), m.lock, m.o.StatementLockTimeout.Milliseconds(), quoteLiteral(quoteTable(m.o.Table)))
	results, err := conn.PgConn().Exec(ctx, batch).ReadAll()
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
			return false, "", fmt.Errorf("another migration run held this tenant's migration lock for longer than run-lock-wait (%s)", m.o.RunLockWait)
		}
		return false, "", fmt.Errorf("take migration lock: %w", err)
	}
	look := results[len(results)-1].Rows
	if len(look) != 1 || len(look[0]) != 2 {
		return false, "", fmt.Errorf("look for migrations table %s: unexpected answer", m.o.Table)
	}
	return string(look[0][0]) == "t", string(look[0][1]), nil // text format; a NULL schema reads as ""
}

// quoteTable quotes a table name, schema-qualified or not ("app.migrations"
// or "migrations"), as a SQL identifier, splitting it where dbmate does.
func quoteTable(name string) string {
	return pgx.Identifier(strings.Split(name, ".")).Sanitize()
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// applied reads the versions recorded in the migrations table (none if it
// does not exist yet).
func (m *Migrator) applied(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", quoteTable(m.o.Table)).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for migrations table %s: %w", m.o.Table, err)
	}
	if !exists {
		return map[string]bool{}, nil
	}
	return m.versions(ctx, conn)
}

// versions reads the migrations table, which must exist.
func (m *Migrator) versions(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	rows, err := conn.Query(ctx, "SELECT version::text FROM "+quoteTable(m.o.Table))
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

// appliedFresh reads the versions on a connection of its own, for when
// the tenant's session is gone.
func (m *Migrator) appliedFresh(ctx context.Context, rawURL string) (map[string]bool, error) {
	conn, err := pgconnect.Connect(ctx, rawURL, pgconnect.Options{Attempts: 2, BaseBackoff: 200 * time.Millisecond, ConnectTimeout: 10 * time.Second, AppName: m.o.Connect.AppName})
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return m.applied(ctx, conn)
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

// runFiles applies the pending files on the session (see applyRun).
// Statements take no context, as dbmate's driver calls do not: when ctx
// ends the session is stopped under them (the statement in flight is
// cancelled and its transaction rolls back). finished is false if the
// loop did not return even then; the session must not be used again.
func (m *Migrator) runFiles(ctx context.Context, s *session, t tenant.Tenant, pending []File, a *attempt) (err error, finished bool) {
	id := randomHex(8)
	sessions.Store(id, s)
	defer sessions.Delete(id)

	mate := dbmate.New(sessionURL(id, s.schema))
	mate.MigrationsTableName = m.o.Table
	mate.Log = io.Discard // dbmate's driver logs only "Creating schema"
	drv, err := mate.Driver()
	if err != nil {
		return err, true
	}
	db, err := drv.Open()
	if err != nil {
		return err, true
	}
	log := syncio.NewBuffer()
	run := &applyRun{m: m, ctx: ctx, drv: drv, db: db, log: log, onFile: func(name string) { m.running.start(t.Name, name) }}
	defer m.running.done(t.Name)
	defer func() { a.log += log.String(); a.lockRetries += int(run.retries.Load()) }()

	done := make(chan error, 1)
	go func() { done <- run.applyPending(pending) }()
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
		return fmt.Errorf("%w: the migration did not return within 10s of its statement being cancelled", ctx.Err()), false
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

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
