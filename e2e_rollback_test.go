package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"

	"github.com/pgfleet/pgfleet/internal/testenv"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
)

// The test migrations: testdata's three (users, projects, tasks) and a
// fourth that adds a column.
const (
	vUsers, vProjects, vTasks = "20240101120000", "20240101120100", "20240101120200"
	vNickname                 = "29990101000000"
)

func nicknameDir(t *testing.T, down string) string {
	return migrationsCopy(t, map[string]string{addNickname: "-- migrate:up\nALTER TABLE users ADD COLUMN nickname text;\n-- migrate:down\n" + down})
}

func rollbackInputs(f *testenv.Fleet, dir, to string) inputs {
	in := neonInputs(f, dir)
	in["mode"], in["rollback-to"] = "rollback", to
	return in
}

// ids is a projects input naming these tenants.
func ids(tenants []testenv.Tenant) string {
	var s []string
	for _, tn := range tenants {
		s = append(s, tn.ProjectID)
	}
	return strings.Join(s, ",")
}

// spreadFleet puts 20 tenants at different versions: 0-9 at the latest
// (nickname), 10-18 one behind (tasks), 19 at none.
func spreadFleet(t *testing.T, dir string) *testenv.Fleet {
	t.Helper()
	f := newFleet(t, 20, neonapi.Config{})
	in := neonInputs(f, dir)
	in["projects"] = ids(f.Tenants[:10])
	mustCode(t, runPgfleet(t, in), 0)
	in = neonInputs(f, "testdata/migrations")
	in["projects"] = ids(f.Tenants[10:19])
	mustCode(t, runPgfleet(t, in), 0)
	return f
}

// consistent checks a tenant's tables against its recorded versions.
func consistent(t *testing.T, tn testenv.Tenant) {
	t.Helper()
	recorded := map[string]bool{}
	for _, v := range versions(t, tn.DB.URL) {
		recorded[v] = true
	}
	for v, ok := range map[string]bool{
		vUsers:    tableExists(t, tn.DB.URL, "users"),
		vProjects: tableExists(t, tn.DB.URL, "projects"),
		vTasks:    tableExists(t, tn.DB.URL, "tasks"),
		vNickname: recorded[vUsers] && columnExists(t, tn.DB.URL, "users", "nickname"),
	} {
		if ok != recorded[v] {
			t.Errorf("%s: version %s recorded %v, but its schema change present %v", tn.ProjectID, v, recorded[v], ok)
		}
	}
}

func TestRollbackTakesOnlyTheTenantsAboveTheTarget(t *testing.T) {
	dir := nicknameDir(t, "ALTER TABLE users DROP COLUMN nickname;\n")
	f := spreadFleet(t, dir)

	r := runPgfleet(t, rollbackInputs(f, dir, vProjects))
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"succeeded": "19", "up-to-date": "1"})
	for i, tn := range f.Tenants {
		got := strings.Join(versions(t, tn.DB.URL), ",")
		want := vUsers + "," + vProjects
		if i == 19 {
			want = ""
		}
		if got != want {
			t.Errorf("tenant %d: versions %q, want %q", i, got, want)
		}
		consistent(t, tn)
	}
	rec := r.report.Tenants[r.report.byID()[f.Tenants[0].ProjectID]]
	if rec.From != vNickname || rec.To != vProjects || strings.Join(rec.RolledBack, ",") != addNickname+",20240101120200_create_tasks.sql" {
		t.Errorf("latest tenant's record %+v", rec)
	}
	// dbmate's own CLI reads the result as its own.
	db := dbmate.New(mustURL(t, f.Tenants[0].DB.URL))
	db.MigrationsDir = []string{dir}
	migrations, err := db.FindMigrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations {
		if m.Applied != (m.Version == vUsers || m.Version == vProjects) {
			t.Errorf("dbmate status: %s applied=%v", m.FileName, m.Applied)
		}
	}

	r = runPgfleet(t, rollbackInputs(f, dir, vProjects))
	mustCode(t, r, 0)
	if r.outputs["up-to-date"] != "20" {
		t.Fatalf("a re-run did something: %v", r.outputs)
	}
	mustCode(t, runPgfleet(t, neonInputs(f, dir)), 0)
	for _, tn := range f.Tenants {
		if v := versions(t, tn.DB.URL); len(v) != 4 {
			t.Errorf("%s after migrate: %v", tn.ProjectID, v)
		}
		consistent(t, tn)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRollbackDownFailsOnOneTenant(t *testing.T) {
	dir := nicknameDir(t, "ALTER TABLE users DROP COLUMN nickname;\n")
	f := newFleet(t, 4, neonapi.Config{})
	mustCode(t, runPgfleet(t, neonInputs(f, dir)), 0)
	stuck := f.Tenants[1]
	// A view on the column: DROP COLUMN fails on this tenant only.
	execSQL(t, stuck.DB.URL, "CREATE VIEW nicknames AS SELECT nickname FROM users")
	r := runPgfleet(t, rollbackInputs(f, dir, vTasks))
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"failed": "1", "succeeded": "3"})
	rec := r.report.Tenants[r.report.byID()[stuck.ProjectID]]
	if !strings.Contains(rec.Error, "depend") || rec.To != vNickname {
		t.Fatalf("record %+v", rec)
	}
	for _, tn := range f.Tenants {
		consistent(t, tn)
		want := 3
		if tn.ProjectID == stuck.ProjectID {
			want = 4
		}
		if got := versions(t, tn.DB.URL); len(got) != want {
			t.Errorf("%s: versions %v", tn.ProjectID, got)
		}
	}
}

func TestRollbackRefusesWhatCannotBeUndone(t *testing.T) {
	dir := nicknameDir(t, "-- nothing here undoes the column\n")
	f := newFleet(t, 2, neonapi.Config{})
	mustCode(t, runPgfleet(t, neonInputs(f, dir)), 0)
	for _, c := range []struct{ to, want string }{
		{vProjects, "down section of " + addNickname + " is missing or empty"},
		{"20240101125959", "not the version of any file"},
		{"", "rollback-to: required"},
	} {
		r := runPgfleet(t, rollbackInputs(f, dir, c.to))
		mustCode(t, r, 2)
		if !strings.Contains(r.stdout+r.stderr, c.want) {
			t.Errorf("rollback-to %q: output lacks %q:\n%s%s", c.to, c.want, r.stdout, r.stderr)
		}
	}
	for _, tn := range f.Tenants {
		if len(versions(t, tn.DB.URL)) != 4 || !columnExists(t, tn.DB.URL, "users", "nickname") {
			t.Fatalf("%s was touched", tn.ProjectID)
		}
	}
	// A version applied above the target whose file is gone fails that
	// tenant only; the others roll back.
	gone := f.Tenants[0]
	execSQL(t, gone.DB.URL, "INSERT INTO schema_migrations (version) VALUES ('29990202000000')")
	good := nicknameDir(t, "ALTER TABLE users DROP COLUMN nickname;\n")
	r := runPgfleet(t, rollbackInputs(f, good, vTasks))
	mustCode(t, r, 1)
	rec := r.report.Tenants[r.report.byID()[gone.ProjectID]]
	if !strings.Contains(rec.Error, "29990202000000") || !strings.Contains(rec.Error, "nothing can undo it") || !columnExists(t, gone.DB.URL, "users", "nickname") {
		t.Fatalf("record %+v", rec)
	}
	wantOutputs(t, r, map[string]string{"succeeded": "1"})
}

func TestRollbackDryRunIsThePlan(t *testing.T) {
	dir := nicknameDir(t, "ALTER TABLE users DROP COLUMN nickname;\n")
	f := newFleet(t, 2, neonapi.Config{})
	mustCode(t, runPgfleet(t, neonInputs(f, dir)), 0)
	in := rollbackInputs(f, dir, "0")
	in["dry-run"] = "true"
	r := runPgfleet(t, in)
	mustCode(t, r, 0)
	if !strings.Contains(r.summary, "to roll back") || !strings.Contains(r.summary, "2 of 2 tenants have files to roll back") {
		t.Fatalf("summary:\n%s", r.summary)
	}
	for _, tn := range f.Tenants {
		if len(versions(t, tn.DB.URL)) != 4 {
			t.Fatalf("a dry run changed %s", tn.ProjectID)
		}
	}
}
