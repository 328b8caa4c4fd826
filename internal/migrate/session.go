package migrate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	"github.com/amacneil/dbmate/v2/pkg/dbutil"
	"github.com/amacneil/dbmate/v2/pkg/driver/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// A session is one tenant's single Postgres connection, shared by pgfleet's
// own queries (the advisory lock, reading versions) and by dbmate.
//
// Why one connection and not a separate one for dbmate: dbmate opens two
// connections of its own per Migrate call, and on a fleet the connection
// (TCP, TLS, SCRAM, waking a compute) is the dominant cost: three connections
// per tenant made a cold run about 1.9x slower than a plain loop doing the
// same SQL (make bench). The advisory lock is a session lock, so it is held
// across every migration's transaction on this same connection until we
// release it. dbmate reaches the session through database/sql: each *sql.DB
// it opens is a view of this connection whose Close leaves it open.
type session struct {
	conn    *stdlib.Conn // the driver-level connection; conn.Conn() is the *pgx.Conn
	stopped atomic.Bool  // set when the tenant's time is up: every further statement fails
	table   string       // the migrations table, for dbmate's schema-creation step
	schema  string       // the session's current_schema()
}

var errStopped = errors.New("stopped: the tenant's time ran out or the run was cancelled")

// pgx returns the session's pgx connection for pgfleet's own queries.
func (s *session) pgx() *pgx.Conn { return s.conn.Conn() }

// stop makes every later statement fail and cancels the one in flight, so
// dbmate (which takes no context) stops at once and its open transaction
// rolls back.
func (s *session) stop(ctx context.Context) {
	s.stopped.Store(true)
	s.conn.Conn().PgConn().CancelRequest(ctx)
}

func (s *session) close() error { return s.conn.Close() }

// Connect implements driver.Connector: every *sql.DB dbmate opens gets the
// same connection.
func (s *session) Connect(context.Context) (driver.Conn, error) { return &sessionConn{s.conn, s}, nil }

// Driver implements driver.Connector.
func (s *session) Driver() driver.Driver { return stdlib.GetDefaultDriver() }

// sessionConn is the session as database/sql sees it.
type sessionConn struct {
	*stdlib.Conn
	s *session
}

// Close keeps the connection: dbmate closes each *sql.DB it opens, and the
// session must outlive them.
func (c *sessionConn) Close() error { return nil }

func (c *sessionConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if c.s.stopped.Load() {
		return nil, errStopped
	}
	return c.Conn.ExecContext(ctx, q, args)
}

func (c *sessionConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	if c.s.stopped.Load() {
		return nil, errStopped
	}
	return c.Conn.QueryContext(ctx, q, args)
}

func (c *sessionConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.s.stopped.Load() {
		return nil, errStopped
	}
	return c.Conn.BeginTx(ctx, opts)
}

func (c *sessionConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	if c.s.stopped.Load() {
		return nil, errStopped
	}
	return c.Conn.PrepareContext(ctx, q)
}

// The dbmate driver "pgfleet" is dbmate's own postgres driver (all its
// bookkeeping SQL) opened on a session instead of a fresh lib/pq connection.
// dbmate finds drivers by name and builds them from a URL, so the URL names
// the session: pgfleet://session/<id>. It carries no credential.
const dbmateDriverName = "pgfleet"

var sessions sync.Map // id -> *session

func init() { dbmate.RegisterDriver(newSessionDriver, dbmateDriverName) }

// sessionURL names the session. search_path, when known, spares dbmate a
// "select current_schema()" before each of its bookkeeping statements; it
// is the session's own current_schema(), so dbmate finds the same table.
func sessionURL(id, schema string) *url.URL {
	u := &url.URL{Scheme: dbmateDriverName, Host: "session", Path: "/" + id}
	if schema != "" {
		u.RawQuery = url.Values{"search_path": {schema}}.Encode()
	}
	return u
}

type sessionDriver struct {
	dbmate.Driver // dbmate's postgres driver
	s             *session
}

func newSessionDriver(cfg dbmate.DriverConfig) dbmate.Driver {
	s, _ := sessions.Load(cfg.DatabaseURL.Path[1:])
	// The postgres driver reads the URL only to open connections (we do
	// that) and for search_path (see sessionURL).
	inner := postgres.NewDriver(cfg)
	return &sessionDriver{Driver: inner, s: s.(*session)}
}

func (d *sessionDriver) Open() (*sql.DB, error) {
	db := sql.OpenDB(d.s)
	db.SetMaxOpenConns(1)
	return db, nil
}

// MigrationsTableExists asks the catalog directly. dbmate's own check reads
// information_schema.tables, which costs a fresh backend about 3 ms of
// catalog loading, against 0.5 ms for to_regclass: on a fleet every tenant
// is a fresh backend. The table is resolved the way dbmate resolves it (its
// schema, else the session's search_path).
func (d *sessionDriver) MigrationsTableExists(db *sql.DB) (bool, error) {
	name := d.s.table
	if !strings.Contains(name, ".") && d.s.schema != "" {
		name = d.s.schema + "." + name
	}
	var exists bool
	err := db.QueryRow("SELECT to_regclass($1) IS NOT NULL", quoteTable(name)).Scan(&exists)
	return exists, err
}

// CreateMigrationsTable repeats dbmate's "create the schema if it is
// missing" step, which dbmate recognises only in lib/pq's error type.
func (d *sessionDriver) CreateMigrationsTable(db *sql.DB) error {
	err := d.Driver.CreateMigrationsTable(db)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3F000" {
		return err
	}
	schema, err := dbutil.QueryValue(db, "select quote_ident(split_part($1, '.', 1))", d.tableName())
	if err != nil {
		return err
	}
	if _, err := db.Exec("create schema if not exists " + schema); err != nil {
		return fmt.Errorf("create schema %s for the migrations table: %w", schema, err)
	}
	return d.Driver.CreateMigrationsTable(db)
}

func (d *sessionDriver) tableName() string {
	// sessionDriver is built per Migrate call with the Migrator's table.
	return d.s.table
}

// QueryError gives dbmate the error position from pgx's error type, so the
// message points at the line and column of the failing statement.
func (d *sessionDriver) QueryError(query string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Position > 0 {
		return &dbmate.QueryError{Err: err, Query: query, Position: int(pgErr.Position)}
	}
	return d.Driver.QueryError(query, err)
}
