package migrate

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/report"
)

// Mode is `mode: migrate`: the repository's dbmate migrations applied to
// every tenant.
type Mode struct{}

var _ mode.Mode = Mode{}

var _ mode.Job = (*Job)(nil)

func (Mode) Name() string { return "migrate" }

func (Mode) Synopsis() string {
	return "Apply the repository's dbmate migrations to every tenant, each file in its own transaction, under a per-tenant lock."
}

// The mode's own inputs, each declared once and read by its value.
var (
	InputMigrationsDir   = &input.Input{Name: "migrations-dir", Default: "db/migrations", Description: "Directory of dbmate migrations (relative to the workspace); validated once, before any tenant is touched."}
	InputMigrationsTable = &input.Input{Name: "migrations-table", Default: "schema_migrations", Description: "dbmate's table recording applied migrations (may be schema.table)."}
	InputLockTimeout     = &input.Input{Name: "lock-timeout", Default: "1m", Description: "How long a tenant waits for another run's migration lock (Go duration)."}
)

func (Mode) Inputs() []*input.Input {
	return []*input.Input{
		InputMigrationsDir,
		InputMigrationsTable,
		input.DryRun,
		InputLockTimeout,
	}
}

func (Mode) Outputs() []input.Output {
	return []input.Output{{Name: "pending", Description: "Dry run only: tenants with pending migrations."}}
}

var tableNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// Prepare validates the inputs and loads every migration file before any
// tenant is touched.
func (Mode) Prepare(_ context.Context, env mode.Env) (mode.Job, error) {
	in := env.Inputs
	o := Options{
		Table:       in.String(InputMigrationsTable),
		LockTimeout: in.Duration(InputLockTimeout),
		DryRun:      in.Bool(input.DryRun),
	}
	if !tableNamePattern.MatchString(o.Table) {
		in.Bad(InputMigrationsTable, "want a table name like schema_migrations or myschema.schema_migrations, got %q", o.Table)
	}
	dir := in.String(InputMigrationsDir)
	path := dir
	if !filepath.IsAbs(path) && env.Workspace != "" {
		path = filepath.Join(env.Workspace, path)
	}
	set, err := Load(path)
	if err != nil {
		in.BadErr(InputMigrationsDir, err)
	}
	if err := in.Err(); err != nil {
		return nil, err
	}
	set.Dir = dir
	return &Job{Migrator: New(set, o)}, nil
}

// Job migrates tenants to one validated set of files.
type Job struct{ *Migrator }

func (j *Job) Describe() string {
	s := fmt.Sprintf("%d migration files from %s (latest %s)", len(j.set.Files), j.set.Dir, j.set.Latest())
	if j.o.DryRun {
		s += ", dry run: nothing will be changed"
	}
	return s
}

func (j *Job) DryRun() bool { return j.o.DryRun }

func (j *Job) Columns() []report.Column {
	if j.o.DryRun {
		return []report.Column{{Title: "from"}, {Title: "to if applied"}, {Title: "pending"}}
	}
	return []report.Column{{Title: "from"}, {Title: "to"}, {Title: "applied"}}
}

// Sections is how many tenants stand at each schema version before and
// after the run (after if applied, for a dry run).
func (j *Job) Sections(results []fleet.Result) []report.Section {
	type tally struct{ before, after int }
	byVersion := map[string]*tally{}
	count := func(v string) *tally {
		if byVersion[v] == nil {
			byVersion[v] = &tally{}
		}
		return byVersion[v]
	}
	unknown := 0
	for _, r := range results {
		d, _ := r.Detail.(*Detail)
		if d == nil {
			unknown++
			continue
		}
		count(d.From).before++
		if j.o.DryRun {
			count(d.afterIfApplied()).after++
		} else {
			to := d.To
			if to == "" {
				to = d.From // nothing read after the run: it stayed where it was
			}
			count(to).after++
		}
	}
	versions := make([]string, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	slices.SortFunc(versions, func(a, b string) int {
		switch {
		case versionLess(a, b):
			return -1
		case versionLess(b, a):
			return 1
		}
		return 0
	})
	after := "after"
	if j.o.DryRun {
		after = "after if applied"
	}
	sec := report.Section{
		Title:   "Schema versions",
		Columns: []report.Column{{Title: "version"}, {Title: "before", Numeric: true}, {Title: after, Numeric: true}},
	}
	if j.o.DryRun {
		sec.Note = fmt.Sprintf("%d of %d tenants have pending migrations.", pendingTenants(results), len(results))
	}
	for _, v := range versions {
		t := byVersion[v]
		sec.Rows = append(sec.Rows, []string{versionCell(v), strconv.Itoa(t.before), strconv.Itoa(t.after)})
	}
	if unknown > 0 {
		sec.Rows = append(sec.Rows, []string{"unknown (not reached)", strconv.Itoa(unknown), strconv.Itoa(unknown)})
	}
	return []report.Section{sec}
}

// Outputs: pending, in a dry run.
func (j *Job) Outputs(results []fleet.Result) map[string]string {
	if !j.o.DryRun {
		return nil
	}
	return map[string]string{"pending": strconv.Itoa(pendingTenants(results))}
}

func pendingTenants(results []fleet.Result) int {
	n := 0
	for _, r := range results {
		if d, _ := r.Detail.(*Detail); d != nil && len(d.Pending) > 0 {
			n++
		}
	}
	return n
}
