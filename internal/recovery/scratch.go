package recovery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/archive"
)

// userObjectsQuery finds tables and views outside the system schemas that
// no extension owns.
const userObjectsQuery = `
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
LIMIT 6`

// UserObjects lists up to 6 tables or views a database holds outside the
// system schemas (qualified names): none means a restore starts empty.
func UserObjects(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, _ := conn.Query(ctx, userObjectsQuery)
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var s, n string
		err := r.Scan(&s, &n)
		return archive.QualifiedName(s, n), err
	})
	if err != nil {
		return nil, fmt.Errorf("look at the target's tables: %w", err)
	}
	return found, nil
}

// emptyStatements find what a restore of a --no-owner dump creates
// outside the system catalogs, each row one statement that drops it.
//
// Why these and not DROP OWNED or DROP DATABASE: DROP DATABASE needs a
// connection to another database and CREATEDB, and the scratch URL names
// only its own; DROP OWNED BY CURRENT_USER fails outright for the
// bootstrap superuser (postgres in a `services: postgres` container owns
// the catalogs, "required by the database system") and leaves objects of
// other owners. Dropping every non-system schema with CASCADE takes all
// the schema-bound objects a dump holds (tables, types, functions,
// sequences, views, text search, ...) whoever owns them; what lives
// outside schemas is dropped on its own: extensions (plpgsql, which every
// database has, excepted), large objects (pg_dump includes them by
// default), publications, event triggers and foreign servers. public is
// dropped like any other schema and recreated empty, since a dump of
// PostgreSQL 15+ assumes it exists.
var emptyStatements = []string{
	`SELECT 'DROP EXTENSION IF EXISTS ' || pg_catalog.quote_ident(extname) || ' CASCADE' FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql'`,
	`SELECT 'DROP EVENT TRIGGER IF EXISTS ' || pg_catalog.quote_ident(evtname) || ' CASCADE' FROM pg_catalog.pg_event_trigger`,
	`SELECT 'DROP PUBLICATION IF EXISTS ' || pg_catalog.quote_ident(pubname) FROM pg_catalog.pg_publication`,
	`SELECT 'DROP SERVER IF EXISTS ' || pg_catalog.quote_ident(srvname) || ' CASCADE' FROM pg_catalog.pg_foreign_server`,
	`SELECT 'DROP SCHEMA IF EXISTS ' || pg_catalog.quote_ident(nspname) || ' CASCADE' FROM pg_catalog.pg_namespace
	 WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\_%'`,
}

// EmptyScratch empties a scratch database for the next restore, in one
// transaction (so a failure leaves it as it was): every non-system schema
// (public included) is dropped with what it holds, and so are extensions,
// large objects, publications, event triggers and foreign servers; then an
// empty public schema is created. It is for a database pgfleet was told is
// scratch, never a tenant's.
func EmptyScratch(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("empty the scratch database: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, q := range emptyStatements {
		rows, _ := tx.Query(ctx, q)
		drops, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("empty the scratch database: %w", err)
		}
		for _, d := range drops {
			if _, err := tx.Exec(ctx, d); err != nil {
				return fmt.Errorf("empty the scratch database: %s: %w", d, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata`); err != nil {
		return fmt.Errorf("empty the scratch database: remove its large objects: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA public`); err != nil {
		return fmt.Errorf("empty the scratch database: create the public schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("empty the scratch database: %w", err)
	}
	return nil
}

// ScratchMarker begins the comment pgfleet puts on a database it drills
// into (COMMENT ON DATABASE): a database's comment is a shared object, so it
// survives EmptyScratch's drops, and it lets a later run tell its own
// leftovers from a database that holds someone's data.
const ScratchMarker = "pgfleet restore-drill scratch database"

// scratchComment is the whole comment.
const scratchComment = ScratchMarker + ": emptied (every non-system schema dropped) before each restore drill; do not keep data here"

// ScratchState is what a would-be scratch database holds, read before
// anything is written to it.
type ScratchState struct {
	Marked  bool     // it carries ScratchMarker: an earlier drill's scratch database
	CanMark bool     // the session may comment on it (owns it, or is a superuser)
	Objects []string // up to 6 of its tables and views (UserObjects)
}

// ReadScratch reads conn's database's marker, whether the session could
// mark it, and its tables, touching nothing.
func ReadScratch(ctx context.Context, conn *pgx.Conn) (ScratchState, error) {
	var s ScratchState
	var comment string
	err := conn.QueryRow(ctx, `SELECT coalesce(pg_catalog.shobj_description(d.oid, 'pg_database'), ''),
		pg_catalog.pg_has_role(current_user, d.datdba, 'USAGE') OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
		FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()`).Scan(&comment, &s.CanMark)
	if err != nil {
		return s, fmt.Errorf("read the scratch database's comment: %w", err)
	}
	s.Marked = strings.HasPrefix(comment, ScratchMarker)
	s.Objects, err = UserObjects(ctx, conn)
	return s, err
}

// Refusal is why a drill must not empty this database, "" when it may: one
// that holds tables and was never marked is someone's, however it came to
// be named; an unmarked empty one is marked before its first drill, which
// needs its owner (or a superuser).
func (s ScratchState) Refusal() string {
	switch {
	case s.Marked:
		return ""
	case len(s.Objects) > 0:
		more := ""
		if len(s.Objects) > 5 {
			s.Objects, more = s.Objects[:5], ", …"
		}
		return "holds tables (" + strings.Join(s.Objects, ", ") + more + ") and was never a pgfleet drill's scratch database: give an empty database (the drill empties its target before each restore)"
	case !s.CanMark:
		return "is an empty database the connecting user does not own: the drill marks its scratch database with COMMENT ON DATABASE, which needs the owner, so that a later run can tell its leftovers from someone's tables; connect as the database's owner (a services: postgres container's user is) or give a database that user owns"
	}
	return ""
}

// CheckScratch is ReadScratch, with Refusal as an error naming the
// scratch database.
func CheckScratch(ctx context.Context, conn *pgx.Conn) (ScratchState, error) {
	st, err := ReadScratch(ctx, conn)
	if err != nil {
		return st, err
	}
	if why := st.Refusal(); why != "" {
		return st, errors.New("the scratch database " + why)
	}
	return st, nil
}

// MarkScratch puts ScratchMarker on conn's database (the name quoted:
// COMMENT ON DATABASE takes no expression).
func MarkScratch(ctx context.Context, conn *pgx.Conn) error {
	var stmt string
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.format('COMMENT ON DATABASE %I IS %L', pg_catalog.current_database(), $1::text)`, scratchComment).Scan(&stmt); err != nil {
		return fmt.Errorf("mark the scratch database: %w", err)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("mark the scratch database (COMMENT ON DATABASE): %w", err)
	}
	return nil
}
