package recovery

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// EmptyScratch against a real PostgreSQL cluster (one test: it starts its
// own).

func countOf(t *testing.T, conn *pgx.Conn, q string) (n int) {
	t.Helper()
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// What a previous drill's restore leaves (tables, a quoted schema, a view,
// a type, a function, a large object, a publication, an event trigger) is
// all gone after EmptyScratch, as the bootstrap superuser (a `services:
// postgres` container's user) and as the database's owner; an empty public
// schema is there for the next restore, and the same dump restores again.
func TestEmptyScratch(t *testing.T) {
	const previous = `
CREATE TABLE customers (id bigserial PRIMARY KEY, name text);
INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 50) g;
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."T" (k int);
CREATE VIEW v AS SELECT * FROM customers;
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
SELECT lo_from_bytea(0, 'a large object');
CREATE PUBLICATION pub FOR TABLE customers;
`
	cluster := pgcluster.StartForTest(t)
	t.Run("marker", func(t *testing.T) { testScratchMarker(t, cluster) })
	for _, as := range []string{"superuser", "owner"} {
		t.Run(as, func(t *testing.T) {
			db := cluster.TenantForTest(t, "scratch_"+as)
			url := db.URL
			if as == "superuser" {
				url = cluster.AdminURL(db.Name)
			}
			conn := pgcluster.Connect(t, url)
			ctx := context.Background()
			if _, err := conn.Exec(ctx, previous); err != nil {
				t.Fatal(err)
			}
			if as == "superuser" {
				if _, err := conn.Exec(ctx, `CREATE FUNCTION et() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END';
CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION et()`); err != nil {
					t.Fatal(err)
				}
			}
			if found, err := UserObjects(ctx, conn); err != nil || len(found) == 0 {
				t.Fatalf("before: %v %v", found, err)
			}
			if err := EmptyScratch(ctx, conn); err != nil {
				t.Fatal(err)
			}
			if found, err := UserObjects(ctx, conn); err != nil || len(found) != 0 {
				t.Errorf("after: tables or views left: %v %v", found, err)
			}
			for what, q := range map[string]string{
				"schemas besides public": `SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('information_schema', 'public')`,
				"objects in public":      `SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) + (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace) + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace)`,
				"large objects":          `SELECT count(*) FROM pg_largeobject_metadata`,
				"publications":           `SELECT count(*) FROM pg_publication`,
				"event triggers":         `SELECT count(*) FROM pg_event_trigger`,
			} {
				if n := countOf(t, conn, q); n != 0 {
					t.Errorf("%d %s left", n, what)
				}
			}
			if n := countOf(t, conn, `SELECT count(*) FROM pg_namespace WHERE nspname = 'public'`); n != 1 {
				t.Errorf("public schema: %d", n)
			}
			// The next restore of the same objects goes in.
			if _, err := conn.Exec(ctx, previous); err != nil {
				t.Errorf("restoring the same objects again: %v", err)
			}
			// Empty twice in a row: nothing to drop is no error.
			if err := EmptyScratch(ctx, conn); err != nil {
				t.Fatal(err)
			}
			if err := EmptyScratch(ctx, conn); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The drill's marker: a database with tables and no marker is refused, an
// empty one may be marked by its owner (and by a superuser, whatever its
// name: COMMENT ON DATABASE takes the name quoted) but is refused for a
// user who could not mark it; the marker survives EmptyScratch, and a
// marked database with tables (an earlier drill's) is accepted.
func testScratchMarker(t *testing.T, cluster *pgcluster.Cluster) {
	ctx := context.Background()
	read := func(conn *pgx.Conn) ScratchState {
		t.Helper()
		st, err := ReadScratch(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	db := cluster.TenantForTest(t, "scratch_marker")
	other := cluster.TenantForTest(t, "scratch_marker_other")
	// other's role, connected to db: it may connect, not comment.
	admin := pgcluster.Connect(t, cluster.AdminURL("postgres"))
	if _, err := admin.Exec(ctx, `GRANT CONNECT ON DATABASE `+db.Name+` TO `+other.Role); err != nil {
		t.Fatal(err)
	}
	stranger := pgcluster.Connect(t, strings.Replace(other.URL, "/"+other.Name+"?", "/"+db.Name+"?", 1))
	if st := read(stranger); st.Marked || st.CanMark || !strings.Contains(st.Refusal(), "the connecting user does not own") {
		t.Errorf("as another user: %+v, refusal %q", st, st.Refusal())
	}
	owner := pgcluster.Connect(t, db.URL)
	if st := read(owner); st.Marked || !st.CanMark || st.Refusal() != "" {
		t.Errorf("empty, as its owner: %+v, refusal %q", st, st.Refusal())
	}
	if _, err := owner.Exec(ctx, `CREATE TABLE customers (id int)`); err != nil {
		t.Fatal(err)
	}
	if st := read(owner); !strings.HasPrefix(st.Refusal(), "holds tables (public.customers) and was never a pgfleet drill's scratch database") {
		t.Errorf("with a table, unmarked: refusal %q", st.Refusal())
	}
	if err := MarkScratch(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if st := read(owner); !st.Marked || st.Refusal() != "" {
		t.Errorf("marked, with a table: %+v, refusal %q", st, st.Refusal())
	}
	if err := EmptyScratch(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if st := read(stranger); !st.Marked || st.Refusal() != "" {
		t.Errorf("after EmptyScratch: %+v: want the marker kept", st)
	}

	// A name that needs quoting, marked by the superuser.
	const odd = `Drill "Scratch"-1`
	if _, err := admin.Exec(ctx, `CREATE DATABASE "Drill ""Scratch""-1"`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), `DROP DATABASE IF EXISTS "Drill ""Scratch""-1" WITH (FORCE)`) })
	conn := pgcluster.Connect(t, cluster.AdminURL(odd))
	if err := MarkScratch(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if st := read(conn); !st.Marked || !st.CanMark {
		t.Errorf("%s: %+v", odd, st)
	}
}
