package sqlsplit

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitShapes(t *testing.T) {
	cases := []struct {
		name string
		sql  string
		want []Statement
	}{
		{"two statements", "SELECT 1;\nSELECT 2;", []Statement{{"SELECT 1", 1}, {"SELECT 2", 2}}},
		{"no closing semicolon", "SELECT 1;\n\nSELECT 2\n", []Statement{{"SELECT 1", 1}, {"SELECT 2", 3}}},
		{"only comments and blanks", "-- a;\n/* b; */\n\n", nil},
		{"single quotes", "SELECT 'a;b', 'it''s; here';SELECT 2", []Statement{{"SELECT 'a;b', 'it''s; here'", 1}, {"SELECT 2", 1}}},
		{"E'' escapes", `SELECT E'a\';b';SELECT 2`, []Statement{{`SELECT E'a\';b'`, 1}, {"SELECT 2", 1}}},
		{"backslash in a standard string ends nothing", `SELECT 'a\';SELECT 2`, []Statement{{`SELECT 'a\'`, 1}, {"SELECT 2", 1}}},
		{"double quotes", `CREATE TABLE "a;""b" (x int);SELECT 2`, []Statement{{`CREATE TABLE "a;""b" (x int)`, 1}, {"SELECT 2", 1}}},
		{"dollar quotes", "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql;\nSELECT 2;",
			[]Statement{{"CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql", 1}, {"SELECT 2", 2}}},
		{"tagged dollar quotes holding $$", "SELECT $body$ a; $$ b; $body$;SELECT 2",
			[]Statement{{"SELECT $body$ a; $$ b; $body$", 1}, {"SELECT 2", 1}}},
		{"parameters are not dollar quotes", "PREPARE p AS SELECT $1;SELECT 2", []Statement{{"PREPARE p AS SELECT $1", 1}, {"SELECT 2", 1}}},
		{"dollar inside an identifier", "SELECT a$b;SELECT $x$;$x$", []Statement{{"SELECT a$b", 1}, {"SELECT $x$;$x$", 1}}},
		{"line comment", "SELECT 1 -- not; the end\n;SELECT 2", []Statement{{"SELECT 1 -- not; the end", 1}, {"SELECT 2", 2}}},
		{"nested block comment", "SELECT /* a /* b; */ c; */ 1;SELECT 2", []Statement{{"SELECT /* a /* b; */ c; */ 1", 1}, {"SELECT 2", 1}}},
		{"leading comment is not the statement's line", "-- first;\n\n/* x */ SELECT 1;", []Statement{{"SELECT 1", 3}}},
		{"parentheses", "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2);SELECT 3",
			[]Statement{{"CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)", 1}, {"SELECT 3", 1}}},
		{"BEGIN ATOMIC body", "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;\nSELECT 3;",
			[]Statement{{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END", 1}, {"SELECT 3", 2}}},
		{"CREATE OR REPLACE PROCEDURE body", "create or replace procedure p() language sql begin atomic insert into t values (1); end;select 2",
			[]Statement{{"create or replace procedure p() language sql begin atomic insert into t values (1); end", 1}, {"select 2", 1}}},
		{"BEGIN outside a routine is a statement", "BEGIN;SELECT 1;END;", []Statement{{"BEGIN", 1}, {"SELECT 1", 1}, {"END", 1}}},
		{"unterminated quote runs to the end", "SELECT 1;SELECT 'a;b", []Statement{{"SELECT 1", 1}, {"SELECT 'a;b", 1}}},
		{"lines counted inside strings and comments", "SELECT 'a\nb';\n/* c\nd */\nSELECT 2;", []Statement{{"SELECT 'a\nb'", 1}, {"SELECT 2", 5}}},
		{"two CREATE INDEX CONCURRENTLY", "CREATE INDEX CONCURRENTLY a ON t (x);\n-- the second; after a comment\nCREATE INDEX CONCURRENTLY b ON t (y);\n",
			[]Statement{{"CREATE INDEX CONCURRENTLY a ON t (x)", 1}, {"CREATE INDEX CONCURRENTLY b ON t (y)", 3}}},
		{"non-ASCII text", "SELECT 'é;ü' AS ñ;SELECT 2", []Statement{{"SELECT 'é;ü' AS ñ", 1}, {"SELECT 2", 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Split(c.sql); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Split(%q)\n got %+v\nwant %+v", c.sql, got, c.want)
			}
		})
	}
}

// Every SQL file the project ships splits into statements that stand on
// their own: each one's line is where its text starts, none is empty, and
// splitting the statements joined again gives the same statements.
func TestSplitTestdataFiles(t *testing.T) {
	root := filepath.Join("..", "..", "testdata")
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sql") {
			return err
		}
		files++
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines := strings.Split(string(src), "\n")
		stmts := Split(string(src))
		if len(stmts) == 0 {
			t.Errorf("%s: no statements", path)
		}
		texts := make([]string, len(stmts))
		for i, st := range stmts {
			texts[i] = st.SQL
			first, _, _ := strings.Cut(st.SQL, "\n")
			if st.SQL == "" || st.Line < 1 || st.Line > len(lines) || !strings.Contains(lines[st.Line-1], first) {
				t.Errorf("%s: statement %d at line %d does not start there: %q", path, i+1, st.Line, first)
			}
		}
		again := Split(strings.Join(texts, ";\n"))
		if len(again) != len(stmts) {
			t.Errorf("%s: %d statements split again into %d", path, len(stmts), len(again))
		}
		for i := range again {
			if i < len(stmts) && again[i].SQL != stmts[i].SQL {
				t.Errorf("%s: statement %d changed when split again: %q vs %q", path, i+1, again[i].SQL, stmts[i].SQL)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no .sql files under %s", root)
	}
}
