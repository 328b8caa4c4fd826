package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/report"
)

// okMigration is a valid migration file.
const okMigration = "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n"

// migrationsDir creates a directory holding files (name -> body).
func migrationsDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDetailCells(t *testing.T) {
	cases := []struct {
		name string
		d    Detail
		want []string
	}{
		{"applied two", Detail{From: "1", To: "3", Applied: []string{"2_a.sql", "3_b.sql"}}, []string{"1", "3", "2: 2_a.sql, 3_b.sql"}},
		{"applied three: names", Detail{From: "", To: "3", Applied: []string{"1_a.sql", "2_b.sql", "3_c.sql"}}, []string{"none", "3", "3: 1_a.sql, 2_b.sql, 3_c.sql"}},
		{"applied four: a count", Detail{From: "1", To: "5", Applied: []string{"2_a.sql", "3_b.sql", "4_c.sql", "5_d.sql"}}, []string{"1", "5", "4"}},
		{"up to date", Detail{From: "5", To: "5", Applied: []string{}}, []string{"5", "5", "0"}},
		{"nil lists", Detail{From: "5", To: "5"}, []string{"5", "5", "0"}},
		{"never read: to falls back to from", Detail{From: "7", To: ""}, []string{"7", "7", "0"}},
		{"nothing known", Detail{}, []string{"none", "none", "0"}},
		{"failed part-way", Detail{From: "1", To: "2", Applied: []string{"2_a.sql"}, Pending: []string{"3_b.sql"}, FailedFile: "3_b.sql"}, []string{"1", "2", "1: 2_a.sql"}},

		// Dry run: to if applied (numerically highest, 10 above 4), pending files.
		{"dry run", Detail{DryRun: true, From: "3", To: "3", Pending: []string{"4_x.sql", "10_y.sql"}}, []string{"3", "10", "2: 4_x.sql, 10_y.sql"}},
		{"dry run, fresh tenant, four pending", Detail{DryRun: true, Pending: []string{"1_a.sql", "3_b.sql", "4_c.sql", "10_d.sql"}}, []string{"none", "10", "4"}},
		{"dry run, up to date", Detail{DryRun: true, From: "10", To: "10", Pending: []string{}}, []string{"10", "10", "0"}},
		{"dry run, an older file still pending", Detail{DryRun: true, From: "10", To: "10", Pending: []string{"4_late.sql"}}, []string{"10", "10", "1: 4_late.sql"}},
	}
	for _, c := range cases {
		if got := c.d.Cells(); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: Cells() = %q, want %q", c.name, got, c.want)
		}
	}
	if n := len((&Job{Migrator: New(&Set{}, Options{})}).Columns()); n != 3 {
		t.Errorf("%d columns, want one per cell (3)", n)
	}
}

func TestDetailLogLines(t *testing.T) {
	d := &Detail{
		From: "1", To: "2", Applied: []string{"2_a.sql"}, Pending: []string{"3_b.sql", "4_c.sql"}, FailedFile: "3_b.sql",
		Log: "Applying: 2_a.sql\nApplied: 2_a.sql in 1ms\n\nApplying: 3_b.sql\nError: boom\n",
	}
	want := []string{
		"left at version 2, 2 still pending (first: 3_b.sql)",
		"log: Applying: 2_a.sql",
		"log: Applied: 2_a.sql in 1ms",
		"log: Applying: 3_b.sql",
		"log: Error: boom",
	}
	if got := d.LogLines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("LogLines\n got %q\nwant %q", got, want)
	}

	d = &Detail{Pending: []string{"1_a.sql"}}
	if got := d.LogLines(); fmt.Sprint(got) != "[left at version none, 1 still pending (first: 1_a.sql)]" {
		t.Errorf("no log, nothing read: %q", got)
	}
	d = &Detail{DryRun: true, From: "1", To: "1", Pending: []string{"2_a.sql"}}
	if got := d.LogLines(); len(got) != 0 {
		t.Errorf("a dry run's pending files are not left behind: %q", got)
	}
	d = &Detail{From: "2", To: "2", Log: "  \n"}
	if got := d.LogLines(); len(got) != 0 {
		t.Errorf("blank log: %q", got)
	}
	var _ fleet.Logged = d
}

func result(status fleet.Status, d *Detail) fleet.Result {
	r := fleet.Result{Status: status}
	if d != nil {
		r.Detail = d
	}
	return r
}

func TestSections(t *testing.T) {
	job := &Job{Migrator: New(&Set{}, Options{})}
	results := []fleet.Result{
		result(fleet.Succeeded, &Detail{From: "", To: "10", Applied: []string{"3_a.sql", "10_b.sql"}}),
		result(fleet.Succeeded, &Detail{From: "3", To: "10", Applied: []string{"10_b.sql"}}),
		result(fleet.UpToDate, &Detail{From: "10", To: "10"}),
		result(fleet.Failed, &Detail{From: "3", To: "3", Pending: []string{"10_b.sql"}, FailedFile: "10_b.sql"}),
		result(fleet.Failed, &Detail{From: "3", To: ""}), // versions after unknown: counted where it was
		result(fleet.Skipped, nil),
		result(fleet.Failed, nil),
	}
	secs := job.Sections(results)
	if len(secs) != 1 {
		t.Fatalf("%d sections, want 1", len(secs))
	}
	s := secs[0]
	if s.Title != "Schema versions" || s.Note != "" {
		t.Errorf("title %q, note %q", s.Title, s.Note)
	}
	if fmt.Sprint(s.Columns) != fmt.Sprint([]report.Column{{Title: "version"}, {Title: "before", Numeric: true}, {Title: "after", Numeric: true}}) {
		t.Errorf("columns %v", s.Columns)
	}
	// Numeric order (3 before 10), "none" for no version first, the
	// tenants without a detail last.
	want := [][]string{{"none", "1", "0"}, {"3", "3", "2"}, {"10", "1", "3"}, {"unknown (not reached)", "2", "2"}}
	if fmt.Sprint(s.Rows) != fmt.Sprint(want) {
		t.Errorf("rows\n got %v\nwant %v", s.Rows, want)
	}
	if out := job.Outputs(results); out != nil {
		t.Errorf("no outputs outside a dry run: %v", out)
	}

	// Versions of different lengths and leading zeros still sort by value.
	results = []fleet.Result{
		result(fleet.UpToDate, &Detail{From: "20240101000000", To: "20240101000000"}),
		result(fleet.UpToDate, &Detail{From: "9", To: "9"}),
		result(fleet.UpToDate, &Detail{From: "0010", To: "0010"}),
	}
	if got := job.Sections(results)[0].Rows; fmt.Sprint(got) != "[[9 1 1] [0010 1 1] [20240101000000 1 1]]" {
		t.Errorf("rows %v", got)
	}
	if rows := job.Sections(nil)[0].Rows; len(rows) != 0 {
		t.Errorf("no results, no rows: %v", rows)
	}
}

func TestSectionsDryRun(t *testing.T) {
	job := &Job{Migrator: New(&Set{}, Options{DryRun: true})}
	results := []fleet.Result{
		result(fleet.Succeeded, &Detail{DryRun: true, From: "3", To: "3", Pending: []string{"4_x.sql", "10_y.sql"}}),
		result(fleet.Succeeded, &Detail{DryRun: true, From: "", Pending: []string{"1_init.sql", "3_z.sql", "4_x.sql", "10_y.sql"}}),
		result(fleet.UpToDate, &Detail{DryRun: true, From: "10", To: "10", Pending: []string{}}),
		result(fleet.Skipped, nil),
	}
	s := job.Sections(results)[0]
	if s.Columns[2].Title != "after if applied" || !s.Columns[2].Numeric {
		t.Errorf("columns %v", s.Columns)
	}
	if s.Note != "2 of 4 tenants have pending migrations." {
		t.Errorf("note %q", s.Note)
	}
	want := [][]string{{"none", "1", "0"}, {"3", "1", "0"}, {"10", "1", "3"}, {"unknown (not reached)", "1", "1"}}
	if fmt.Sprint(s.Rows) != fmt.Sprint(want) {
		t.Errorf("rows\n got %v\nwant %v", s.Rows, want)
	}
	if out := job.Outputs(results); fmt.Sprint(out) != "map[pending:2]" {
		t.Errorf("outputs %v", out)
	}
	if out := job.Outputs(nil); fmt.Sprint(out) != "map[pending:0]" {
		t.Errorf("outputs of no results %v", out)
	}
	if cols := job.Columns(); fmt.Sprint(cols) != fmt.Sprint([]report.Column{{Title: "from"}, {Title: "to if applied"}, {Title: "pending"}}) {
		t.Errorf("dry-run columns %v", cols)
	}
	if !job.DryRun() {
		t.Errorf("DryRun() = false")
	}
}

// values builds the migrate mode's inputs from a map, "" for unset.
func values(t *testing.T, given map[string]string) *input.Values {
	t.Helper()
	table := input.NewTable([]input.ModeDecl{{Name: "migrate", Inputs: Mode{}.Inputs(), Outputs: Mode{}.Outputs()}})
	for name := range given {
		if _, ok := table.Lookup(name); !ok {
			t.Fatalf("input %s is not in the table", name)
		}
	}
	return input.NewValues(table, func(name string) string { return given[name] })
}

// inputErrors flattens a (joined) error into its *input.Errors.
func inputErrors(err error) []*input.Error {
	var out []*input.Error
	var walk func(error)
	walk = func(e error) {
		var ie *input.Error
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range u.Unwrap() {
				walk(x)
			}
		} else if errors.As(e, &ie) {
			out = append(out, ie)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func prepare(t *testing.T, workspace string, given map[string]string) (mode.Job, *input.Values, error) {
	t.Helper()
	in := values(t, given)
	job, err := Mode{}.Prepare(context.Background(), mode.Env{
		Inputs:    in,
		Workspace: workspace,
		Getenv:    func(string) string { return "" },
		Secret:    func(string) {},
		Warn:      func(string, ...any) {},
	})
	return job, in, err
}

func TestPrepare(t *testing.T) {
	ws := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ws, "db", "migrations"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"20240101000000_a.sql", "20240201000000_b.sql"} {
		if err := os.WriteFile(filepath.Join(ws, "db", "migrations", name), []byte(okMigration), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The defaults: db/migrations in the workspace.
	job, in, err := prepare(t, ws, nil)
	if err != nil || in.Err() != nil {
		t.Fatalf("Prepare: %v, inputs: %v", err, in.Err())
	}
	if got := job.Describe(); got != "2 migration files from db/migrations (latest 20240201000000)" {
		t.Errorf("Describe() = %q", got)
	}
	m := job.(*Job).Migrator
	if job.DryRun() || m.o.Table != "schema_migrations" || m.o.RunLockWait.String() != "1m0s" || m.lock != LockKey("schema_migrations") {
		t.Errorf("defaults: dry run %v, options %+v", job.DryRun(), m.o)
	}

	// Everything given; an absolute directory is used as is.
	abs, err := filepath.Abs("../../testdata/migrations")
	if err != nil {
		t.Fatal(err)
	}
	job, in, err = prepare(t, ws, map[string]string{
		"migrations-dir": abs, "migrations-table": "myschema.schema_migrations", "dry-run": "true", "run-lock-wait": "90s",
	})
	if err != nil || in.Err() != nil {
		t.Fatalf("Prepare: %v, inputs: %v", err, in.Err())
	}
	if got := job.Describe(); got != "3 migration files from "+abs+" (latest 20240101120200), dry run: nothing will be changed" {
		t.Errorf("Describe() = %q", got)
	}
	m = job.(*Job).Migrator
	if !job.DryRun() || m.o.Table != "myschema.schema_migrations" || m.o.RunLockWait.String() != "1m30s" {
		t.Errorf("options %+v", m.o)
	}

	// A relative directory is resolved in the workspace, and named as given.
	if job, _, err := prepare(t, filepath.Join(abs, "..", ".."), map[string]string{"migrations-dir": "testdata/migrations"}); err != nil ||
		!strings.Contains(job.Describe(), "from testdata/migrations ") {
		t.Errorf("relative dir: %v", err)
	}
}

func TestPrepareInputErrors(t *testing.T) {
	dir := migrationsDir(t, map[string]string{"1_a.sql": okMigration})

	for _, table := range []string{"bad-name", "schema_migrations; DROP TABLE x", "a.b.c", "1table", "my schema.t", ".t", "t."} {
		job, in, err := prepare(t, "", map[string]string{"migrations-dir": dir, "migrations-table": table})
		var ie *input.Error
		if job != nil || !errors.As(err, &ie) {
			t.Errorf("%q: Prepare returned %v, %v; a bad table is recorded in the inputs and returned as an input error", table, job, err)
		}
		errs := inputErrors(in.Err())
		if len(errs) != 1 || errs[0].Input != "migrations-table" || !strings.Contains(errs[0].Problem, fmt.Sprintf("%q", table)) {
			t.Errorf("%q: input errors %v", table, in.Err())
		}
	}
	for _, table := range []string{"schema_migrations", "_x", "My_Schema.Table2"} {
		if _, in, err := prepare(t, "", map[string]string{"migrations-dir": dir, "migrations-table": table}); err != nil || in.Err() != nil {
			t.Errorf("%q: rejected: %v %v", table, err, in.Err())
		}
	}

	_, in, _ := prepare(t, "", map[string]string{"migrations-dir": dir, "run-lock-wait": "soon", "dry-run": "perhaps"})
	var names []string
	for _, e := range inputErrors(in.Err()) {
		names = append(names, e.Input)
	}
	if strings.Join(names, ",") != "run-lock-wait,dry-run" && strings.Join(names, ",") != "dry-run,run-lock-wait" {
		t.Errorf("bad run-lock-wait and dry-run: %v", in.Err())
	}

	// A directory that does not exist, or holds a bad file: an *input.Error
	// naming migrations-dir, before any tenant is touched.
	missing := filepath.Join(t.TempDir(), "nope")
	bad := migrationsDir(t, map[string]string{"1_a.sql": "CREATE TABLE t (id int);\n"})
	empty := t.TempDir()
	for name, c := range map[string]struct {
		workspace, dir, want string
	}{
		"missing":          {"", missing, "does not exist"},
		"missing relative": {t.TempDir(), "db/migrations", "does not exist"},
		"bad file":         {"", bad, "1_a.sql:1: no '-- migrate:up' line"},
		"no files":         {"", empty, "has no migration files"},
	} {
		job, _, err := prepare(t, c.workspace, map[string]string{"migrations-dir": c.dir})
		var ie *input.Error
		if !errors.As(err, &ie) || ie.Input != "migrations-dir" || !strings.Contains(ie.Error(), c.want) {
			t.Errorf("%s: err = %v (%T), want an *input.Error on migrations-dir saying %q", name, err, err, c.want)
		}
		if job != nil {
			t.Errorf("%s: a job for a bad directory", name)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "input migrations-dir: ") {
			t.Errorf("%s: message %q", name, err)
		}
	}
}

func TestModeDeclarations(t *testing.T) {
	m := Mode{}
	if m.Name() != "migrate" || m.Synopsis() == "" {
		t.Errorf("name %q, synopsis %q", m.Name(), m.Synopsis())
	}
	var names []string
	for _, in := range m.Inputs() {
		names = append(names, in.Name)
		if in.Description == "" {
			t.Errorf("input %s has no description", in.Name)
		}
	}
	if strings.Join(names, ",") != "migrations-dir,migrations-table,dry-run,lock-timeout,lock-retries,run-lock-wait,rehearse,rehearse-ttl,rehearse-sample,github-token" {
		t.Errorf("inputs %v", names)
	}
	if outs := m.Outputs(); len(outs) != 2 || outs[0].Name != "pending" || outs[1].Name != "would-fail" {
		t.Errorf("outputs %v", outs)
	}
}

// A tenant with no version before or after (a fresh database whose first
// file failed) counts under one "none" row, not two.
func TestSectionsOneNoneRow(t *testing.T) {
	job := &Job{Migrator: New(&Set{}, Options{})}
	rows := job.Sections([]fleet.Result{
		{Status: fleet.Failed, Detail: &Detail{}},
		{Status: fleet.Succeeded, Detail: &Detail{From: "3", To: "10"}},
	})[0].Rows
	want := [][]string{{"none", "1", "1"}, {"3", "1", "0"}, {"10", "0", "1"}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows %v, want %v", rows, want)
	}
}
