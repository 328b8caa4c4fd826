package migrate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	_ "github.com/amacneil/dbmate/v2/pkg/driver/postgres" // registers dbmate's postgres driver
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
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
	return &Migrator{set: set, o: o, lock: lockKey(o.Table)}
}

// lockKey is the advisory lock every pgfleet run migrating this table takes.
// It is derived from the table name so two fleets sharing a database with
// different tables do not block each other.
func lockKey(table string) int64 {
	h := fnv.New64a()
	h.Write([]byte("pgfleet/migrate/" + table))
	return int64(h.Sum64())
}

// Migrate brings one tenant to the latest migration. It holds the advisory
// lock on a dedicated connection while dbmate runs on its own, and when ctx
// ends (tenant-timeout, cancelled run) it terminates dbmate's backend, since
// dbmate takes no context: the migration in flight rolls back and the tenant
// stays at its last good version.
func (m *Migrator) Migrate(ctx context.Context, t tenant.Tenant) (fleet.Status, any, error) {
	d := &Detail{DryRun: m.o.DryRun}
	conn, err := pgconnect.Connect(ctx, t.URL, m.o.Connect)
	if err != nil {
		return "", d, err
	}
	defer conn.Close(context.Background())

	if err := m.acquireLock(ctx, conn); err != nil {
		return "", d, err
	}
	// Closing the connection releases the lock too; unlocking explicitly
	// keeps the session clean if a pooler ever sits in between.
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", m.lock)
	}()

	before, err := m.applied(ctx, conn)
	if err != nil {
		return "", d, err
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

	runErr := m.runDbmate(ctx, conn, t, d)

	// Read where the tenant stands now, even if ctx is over: the report must
	// say which version a failed or cancelled tenant was left at.
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	after, err := m.applied(rctx, conn)
	if err != nil {
		return "", d, errors.Join(runErr, fmt.Errorf("read applied versions after migrating: %w", err))
	}
	d.To = highest(after)
	d.Applied, d.Pending = nil, nil
	for _, f := range pending {
		if after[f.Version] {
			d.Applied = append(d.Applied, f.Name)
		} else {
			d.Pending = append(d.Pending, f.Name)
		}
	}
	if runErr != nil {
		if len(d.Pending) > 0 {
			d.Failed = d.Pending[0]
			return "", d, fmt.Errorf("%s: %w", d.Failed, runErr)
		}
		return "", d, runErr
	}
	return fleet.Succeeded, d, nil
}

func (m *Migrator) acquireLock(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d", m.o.LockTimeout.Milliseconds())); err != nil {
		return fmt.Errorf("set lock_timeout: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", m.lock); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
			return fmt.Errorf("another migration run held this tenant's migration lock for longer than lock-timeout (%s)", m.o.LockTimeout)
		}
		return fmt.Errorf("take migration lock: %w", err)
	}
	return nil
}

// applied reads the versions recorded in the migrations table (none if it
// does not exist yet).
func (m *Migrator) applied(ctx context.Context, conn *pgx.Conn) (map[string]bool, error) {
	ident := pgx.Identifier(strings.Split(m.o.Table, ".")).Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ident).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for migrations table %s: %w", m.o.Table, err)
	}
	out := map[string]bool{}
	if !exists {
		return out, nil
	}
	rows, err := conn.Query(ctx, "SELECT version::text FROM "+ident)
	if err != nil {
		return nil, fmt.Errorf("read migrations table %s: %w", m.o.Table, err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read migrations table %s: %w", m.o.Table, err)
	}
	for _, v := range versions {
		out[v] = true
	}
	return out, nil
}

// runDbmate applies the pending files with dbmate, retrying when dbmate
// could not reach the database (a compute still waking up). A retry is safe:
// the lock is still held, and each migration is its own transaction, so
// dbmate picks up at the first file not recorded.
func (m *Migrator) runDbmate(ctx context.Context, lockConn *pgx.Conn, t tenant.Tenant, d *Detail) error {
	var err error
	attempts := max(m.o.Connect.Attempts, 1)
	for attempt := 1; attempt <= attempts; attempt++ {
		err = m.runDbmateOnce(ctx, lockConn, t, d)
		if err == nil || !pgconnect.Transient(err) || ctx.Err() != nil || attempt == attempts {
			return err
		}
		if sleepErr := pgconnect.Sleep(ctx, m.o.Connect.Backoff(attempt)); sleepErr != nil {
			return err
		}
	}
	return err
}

func (m *Migrator) runDbmateOnce(ctx context.Context, lockConn *pgx.Conn, t tenant.Tenant, d *Detail) error {
	appName := "pgfleet-migrate-" + randomHex(6)
	u, err := url.Parse(pgconnect.WithParams(t.URL, map[string]string{
		"application_name": appName,
		"connect_timeout":  fmt.Sprint(int(m.o.Connect.Timeout().Seconds())),
	}))
	if err != nil {
		return fmt.Errorf("parse connection string: %v", tenant.Redacted(t.URL))
	}
	db := dbmate.New(u)
	db.AutoDumpSchema = false // no pg_dump after migrating: we manage no schema.sql, and pg_dump may not even be installed
	db.FS = m.set.fsys
	db.MigrationsDir = []string{"."}
	db.MigrationsTableName = m.o.Table
	log := &syncBuffer{}
	db.Log = log

	done := make(chan error, 1)
	go func() { done <- db.Migrate() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = m.stopDbmate(lockConn, appName, done)
	}
	d.Log += log.String()
	return err
}

// stopDbmate terminates dbmate's backend (found by its unique
// application_name) until dbmate gives up. It repeats because dbmate opens
// more than one connection in turn, and one may appear after the first kill.
func (m *Migrator) stopDbmate(lockConn *pgx.Conn, appName string, done <-chan error) error {
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		kctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lockConn.Exec(kctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()", appName)
		cancel()
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("interrupted")
			}
			return fmt.Errorf("stopped: %w", err)
		case <-deadline:
			return errors.New("stopped, but dbmate did not return within 10s of its backend being terminated")
		case <-tick.C:
		}
	}
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

// syncBuffer is dbmate's log writer; dbmate writes from its own goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
