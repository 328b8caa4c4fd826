package migrate

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/migrations"
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

// The inputs migrate and rollback both read, each declared once and read by
// its value: the files, the table, and how a tenant's session waits for
// locks.
var (
	InputLockTimeout = &input.Input{Name: "lock-timeout", Default: "3s", Description: "Postgres lock_timeout for the migrations' statements (Go duration, at most 5s; 0 = none): a statement waiting longer for a table's lock gives up, so the tenant's own queries never queue behind it for longer, and is retried after a pause (lock-retries)."}
	InputLockRetries = &input.Input{Name: "lock-retries", Default: "10", Description: "How many times a file (or a transaction:false statement) that could not get its lock within lock-timeout is retried, after a backoff with jitter of 0.5s doubling to 8s, within tenant-timeout."}
	InputRunLockWait = &input.Input{Name: "run-lock-wait", Default: "1m", Description: "How long a tenant waits for another pgfleet run's migration lock (an advisory lock, not a table's; Go duration)."}
)

func (Mode) Inputs() []*input.Input { return append(sessionInputs(), rehearseInputs()...) }

func sessionInputs() []*input.Input {
	return []*input.Input{migrations.InputDir, migrations.InputTable, input.DryRun, InputLockTimeout, InputLockRetries, InputRunLockWait}
}

func (Mode) Outputs() []input.Output {
	return []input.Output{
		migrations.OutputPending,
		{Name: "would-fail", Description: "Rehearsal only: tenants on whose data the pending migrations would fail."},
	}
}

var tableNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// Prepare validates the inputs and loads every migration file before any
// tenant is touched.
func (Mode) Prepare(_ context.Context, env mode.Env) (mode.Job, error) {
	job, err := prepareSession(env)
	if err != nil {
		return nil, err // not a nil *Job inside a non-nil mode.Job
	}
	return prepareRehearsal(env, job), nil
}

// prepareSession reads the inputs both directions share and loads the files.
func prepareSession(env mode.Env) (*Job, error) {
	in := env.Inputs
	o := Options{
		Table:                in.String(migrations.InputTable),
		RunLockWait:          in.Duration(InputRunLockWait),
		StatementLockTimeout: statementLockTimeout(in),
		LockRetries:          in.Int(InputLockRetries, 0, 100, "retries of a file that could not get its lock"),
		DryRun:               in.Bool(input.DryRun),
	}
	if !tableNamePattern.MatchString(o.Table) {
		in.Bad(migrations.InputTable, "want a table name like schema_migrations or myschema.schema_migrations, got %q", o.Table)
	}
	dir := in.String(migrations.InputDir)
	path := dir
	if !filepath.IsAbs(path) && env.Workspace != "" {
		path = filepath.Join(env.Workspace, path)
	}
	set, err := Load(path)
	if err != nil {
		in.BadErr(migrations.InputDir, err)
	}
	if err := in.Err(); err != nil {
		return nil, err
	}
	set.Dir = dir
	return &Job{Migrator: New(set, o)}, nil
}

// maxStatementLockTimeout bounds lock-timeout: while a migration's
// statement waits for a table's lock, every later query on that table
// waits behind it, so the wait is an outage of that table for the tenant.
const maxStatementLockTimeout = 5 * time.Second

func statementLockTimeout(in *input.Values) time.Duration {
	if in.String(InputLockTimeout) == "0" {
		return 0
	}
	d := in.Duration(InputLockTimeout)
	if d > maxStatementLockTimeout {
		in.Bad(InputLockTimeout, "at most %s (while a statement waits for a lock, the tenant's queries on that table wait behind it), or 0 for none; got %s", maxStatementLockTimeout, d)
	}
	return d
}

// Job migrates tenants to one validated set of files.
type Job struct{ *Migrator }

func (j *Job) Describe() string {
	if j.o.Rollback {
		return j.describeRollback()
	}
	s := fmt.Sprintf("%d migration files from %s (latest %s)", len(j.set.Files), j.set.Dir, j.set.Latest())
	if j.o.DryRun {
		s += ", dry run: nothing will be changed"
	}
	return s
}

func (j *Job) DryRun() bool { return j.o.DryRun }

// ProgressNote names the tenants whose current file has run longest, so a
// person watching a long run sees where it stands.
func (j *Job) ProgressNote() string {
	if l := j.running.longest(3); l != "" {
		return "longest running: " + l
	}
	return ""
}

func (j *Job) Columns() []report.Column {
	switch {
	case j.o.Rollback && j.o.DryRun:
		return []report.Column{{Title: "from"}, {Title: "to if rolled back"}, {Title: "to roll back"}}
	case j.o.Rollback:
		return []report.Column{{Title: "from"}, {Title: "to"}, {Title: "rolled back"}}
	}
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
	switch {
	case j.o.DryRun && j.o.Rollback:
		after = "after if rolled back"
	case j.o.DryRun:
		after = "after if applied"
	}
	sec := report.Section{
		Title:   "Schema versions",
		Columns: []report.Column{{Title: "version"}, {Title: "before", Numeric: true}, {Title: after, Numeric: true}},
	}
	if j.o.DryRun {
		sec.Note = fmt.Sprintf("%d of %d tenants have pending migrations.", pendingTenants(results), len(results))
		if j.o.Rollback {
			sec.Note = fmt.Sprintf("%d of %d tenants have files to roll back.", pendingTenants(results), len(results))
		}
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
