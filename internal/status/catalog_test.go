package status

// readCatalog against a real PostgreSQL cluster (internal/testenv/pgcluster).

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// TestCatalogReadsEveryKindReadOnly: one object of each kind the
// fingerprint covers is read, in the user's schemas only, inside a
// read-only transaction; a change to any of them changes the fingerprint.
func TestCatalogReadsEveryKindReadOnly(t *testing.T) {
	ctx := context.Background()
	// The package's one test that needs a database has a cluster of its own.
	db, err := pgcluster.StartForTest(t).CreateTenant(ctx, "status_catalog")
	if err != nil {
		t.Fatal(err)
	}
	conn := pgcluster.Connect(t, db.URL)
	_, err = conn.Exec(ctx, `
		CREATE SCHEMA app;
		CREATE TYPE mood AS ENUM ('sad', 'ok');
		CREATE DOMAIN app.email AS text NOT NULL CHECK (VALUE LIKE '%@%');
		CREATE SEQUENCE counter START 5;
		CREATE TABLE users (id bigint PRIMARY KEY, email app.email, note varchar(200) DEFAULT 'x', m mood);
		CREATE INDEX users_note_idx ON users (note);
		CREATE VIEW user_emails AS SELECT email FROM users;
		CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
		CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();`)
	if err != nil {
		t.Fatal(err)
	}
	read := func() []Object {
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		objs, err := readCatalog(ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	objs := read()
	got := map[string]string{}
	for _, o := range objs {
		got[o.key()] = o.Def
		if strings.HasPrefix(o.Name, "pg_catalog.") || strings.HasPrefix(o.Name, "information_schema.") {
			t.Fatalf("system object %s", o.key())
		}
	}
	for key, want := range map[string]string{
		"table users":                      "rp",
		"column users.note":                "character varying(200) default 'x'::character varying",
		"column users.id":                  "bigint not null",
		"constraint users.users_pkey":      "PRIMARY KEY (id)",
		"constraint app.email.email_check": "CHECK ((VALUE ~~ '%@%'::text))",
		"index users_note_idx":             "CREATE INDEX users_note_idx ON public.users USING btree (note)",
		"sequence counter":                 "bigint start 5 increment 1 min 1 max 9223372036854775807 cache 1",
		"enum mood":                        "sad, ok",
		"domain app.email":                 "text not null",
		"trigger users.users_touch":        "CREATE TRIGGER users_touch BEFORE UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION touch()",
	} {
		if got[key] != want {
			t.Errorf("%s: %q, want %q", key, got[key], want)
		}
	}
	for _, key := range []string{"view user_emails", "function touch()"} {
		if !strings.Contains(got[key], "md5 ") {
			t.Errorf("%s: %q, want its definition's md5", key, got[key])
		}
	}
	before := fingerprint(objs)
	if _, err := conn.Exec(ctx, `CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := 'y'; RETURN NEW; END $$`); err != nil {
		t.Fatal(err)
	}
	if fingerprint(read()) == before {
		t.Fatal("a changed function body left the fingerprint as it was")
	}
}
