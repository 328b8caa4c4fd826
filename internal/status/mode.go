// Package status is `mode: status`: the fleet at a glance, read-only. Per
// tenant it reports the applied migration version against the files
// (pending, unknown, out of order), a fingerprint of the schema with what
// differs from the tenants at the same version, and the newest good backup
// in the destination; thresholds (max-backup-age, fail-on-*) turn what it
// finds into a failed run, so a scheduled status run is an alarm.
//
// It never changes a tenant: each is read on one connection in one
// read-only transaction, and the backups are read from the destination
// alone, so a run given only a destination connects to no database.
package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/migrations"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/destination"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Mode is `mode: status`.
type Mode struct{}

var _ mode.Mode = Mode{}

var (
	_ mode.Job      = (*Job)(nil)
	_ mode.Finisher = (*Job)(nil)
)

func (Mode) Name() string { return "status" }

func (Mode) Synopsis() string {
	return "Report, read-only, each tenant's migration version, schema drift from the tenants at the same version, and newest good backup; fail on thresholds."
}

// The mode's own inputs, each declared once and read by its value.
var (
	InputSchemaDrift       = &input.Input{Name: "schema-drift", Default: "true", Bool: true, Description: "Status: with the migrations, fingerprint each tenant's schema (one catalog query) and name, object by object, what differs from the biggest group of tenants at the same version."}
	InputMaxBackupAge      = &input.Input{Name: "max-backup-age", Description: "Status: a tenant whose newest good backup is older than this (Go duration or days, e.g. 26h or 2d), or which has none, fails the run. Default: no limit."}
	InputFailOnPending     = &input.Input{Name: "fail-on-pending", Default: "false", Bool: true, Description: "Status: a tenant with pending migrations fails the run."}
	InputFailOnDrift       = &input.Input{Name: "fail-on-drift", Default: "false", Bool: true, Description: "Status: a tenant whose schema differs from the tenants at its version fails the run."}
	InputFailOnUnreachable = &input.Input{Name: "fail-on-unreachable", Default: "false", Bool: true, Description: "Status: a tenant that cannot be connected to or read fails the run (otherwise it is reported and counted in unreachable)."}
)

func (Mode) Inputs() []*input.Input {
	return append([]*input.Input{
		migrations.InputDir,
		migrations.InputTable,
		InputSchemaDrift,
		InputMaxBackupAge,
		InputFailOnPending,
		InputFailOnDrift,
		InputFailOnUnreachable,
	}, destination.Inputs()...)
}

func (Mode) Outputs() []input.Output {
	return []input.Output{
		migrations.OutputPending,
		{Name: "drifted", Description: "Status: tenants whose schema differs from the tenants at the same version."},
		{Name: "stale-backups", Description: "Status: tenants with no good backup, or whose newest is older than max-backup-age."},
		{Name: "unreachable", Description: "Status: tenants that could not be connected to or read."},
	}
}

// Options are a validated status run.
type Options struct {
	Set   *migrations.Set // nil: no database is read
	Table string
	Drift bool
	Store storage.Store // nil: backups are not reported
	// MaxBackupAge fails a tenant whose newest good backup is older; 0 is
	// no limit.
	MaxBackupAge                                  time.Duration
	FailOnPending, FailOnDrift, FailOnUnreachable bool
	Now                                           func() time.Time
}

// defaultMigrationsDir is read only when it exists: a status run for
// backups alone need not have migrations.
const defaultMigrationsDir = "db/migrations"

// Prepare validates the inputs, loads the files and opens the store (no
// request yet) before any tenant is touched.
func (Mode) Prepare(ctx context.Context, env mode.Env) (mode.Job, error) {
	in := env.Inputs
	o := Options{
		Table:             in.String(migrations.InputTable),
		Drift:             in.Bool(InputSchemaDrift),
		FailOnPending:     in.Bool(InputFailOnPending),
		FailOnDrift:       in.Bool(InputFailOnDrift),
		FailOnUnreachable: in.Bool(InputFailOnUnreachable),
		Now:               time.Now,
	}
	if env.Config.CanaryCount > 0 || len(env.Config.CanaryGlobs) > 0 {
		in.Bad(input.Canary, "status changes nothing, so there is nothing for a canary to try first; leave canary empty")
	}
	if in.IsSet(InputMaxBackupAge) {
		d, err := parseAge(in.String(InputMaxBackupAge))
		if err != nil {
			in.Bad(InputMaxBackupAge, "%v", err)
		}
		o.MaxBackupAge = d
	}
	dir := in.String(migrations.InputDir)
	if dir != "" && dir != "none" {
		path := dir
		if !filepath.IsAbs(path) && env.Workspace != "" {
			path = filepath.Join(env.Workspace, path)
		}
		_, statErr := os.Stat(path)
		if !(dir == defaultMigrationsDir && errors.Is(statErr, fs.ErrNotExist)) {
			set, err := migrations.Load(path)
			if err != nil {
				in.BadErr(migrations.InputDir, err)
			} else {
				set.Dir = dir
				o.Set = set
			}
		}
	}
	if in.IsSet(destination.InputDestination) {
		o.Store = destination.Open(ctx, destination.Env{Inputs: in, Workspace: env.Workspace, Getenv: env.Getenv, Secret: env.Secret}, destination.WriteOptions{})
	}
	switch {
	case o.Set == nil && o.Store == nil && in.Err() == nil:
		in.Bad(migrations.InputDir, "nothing to report: give migrations-dir (versions and drift; %s is read when it exists) or destination (backups), or both", defaultMigrationsDir)
	case o.MaxBackupAge > 0 && !in.IsSet(destination.InputDestination):
		in.Bad(InputMaxBackupAge, "needs destination: the backups are read there")
	case o.FailOnPending && o.Set == nil:
		in.Bad(InputFailOnPending, "needs migrations-dir")
	case o.FailOnDrift && (o.Set == nil || !o.Drift):
		in.Bad(InputFailOnDrift, "needs migrations-dir and schema-drift")
	}
	if err := in.Err(); err != nil {
		return nil, err
	}
	j := NewJob(o)
	j.source = env.Source(false)
	sel := env.Config.Selector
	// With part of the fleet selected, every other tenant's folder would
	// look departed.
	j.wholeFleet = len(sel.Include) == 0 && len(sel.Exclude) == 0 && sel.Shard.Count <= 1
	return j, nil
}

// parseAge reads a Go duration, or whole days as "2d".
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a positive duration like 26h or 2d, got %q", s)
	}
	return d, nil
}

// ageLimit is max-backup-age as people write it: 2d, 26h, 90m.
func ageLimit(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String() // 26h0m0s, 1h30m0s, 45s
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Job reports on tenants with one validated set of options.
type Job struct {
	o      Options
	now    time.Time // one clock for every tenant's backup age
	bucket *bucket
	source tenant.Source // the selected tenants (see Source)
	// wholeFleet: no projects, exclude-projects or shard, so a folder no
	// tenant claims belongs to a tenant that left.
	wholeFleet bool

	analysis sync.Once
	groups   []*schemaGroup
}

// NewJob returns the job for o.
func NewJob(o Options) *Job {
	if o.Now == nil {
		o.Now = time.Now
	}
	j := &Job{o: o, now: o.Now()}
	if o.Store != nil {
		j.bucket = &bucket{store: o.Store, claimed: map[string]bool{}}
	}
	return j
}

func (j *Job) Describe() string {
	var parts []string
	if j.o.Set != nil {
		s := fmt.Sprintf("versions against %d migration files from %s (latest %s)", len(j.o.Set.Files), j.o.Set.Dir, j.o.Set.Latest())
		if j.o.Drift {
			s += " and schema drift"
		}
		parts = append(parts, s)
	}
	if j.o.Store != nil {
		s := "backups in " + j.o.Store.String()
		if j.o.MaxBackupAge > 0 {
			s += " (max-backup-age " + j.o.MaxBackupAge.String() + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ") + "; read-only: nothing will be changed"
}

func (j *Job) DryRun() bool { return false }

// Work reads one tenant. What it finds is a failure only where a threshold
// says so; otherwise a tenant with something to report (pending files, no
// good backup, unreachable) succeeds with it, and one with nothing is up
// to date.
func (j *Job) Work(ctx context.Context, t tenant.Tenant) (fleet.Status, fleet.Detail, error) {
	d := &Detail{job: j}
	var problems []string
	if j.o.Set != nil {
		if err := j.readTenant(ctx, t.URL, d); err != nil {
			if ctx.Err() != nil {
				return fleet.Failed, d, err
			}
			d.Unreachable = err.Error()
			if j.o.FailOnUnreachable {
				problems = append(problems, "unreachable: "+err.Error())
			}
		} else if j.o.FailOnPending && len(d.Pending) > 0 {
			problems = append(problems, fmt.Sprintf("%d pending migrations (fail-on-pending)", len(d.Pending)))
		}
	}
	if j.bucket != nil {
		st, err := j.readBackups(ctx, t.Name, t.ID, j.now)
		if err != nil {
			return fleet.Failed, d, err
		}
		d.Backups = st
		if j.o.MaxBackupAge > 0 && st.Stale {
			if st.Newest == "" {
				problems = append(problems, fmt.Sprintf("no good backup (max-backup-age %s)", ageLimit(j.o.MaxBackupAge)))
			} else {
				problems = append(problems, fmt.Sprintf("newest good backup is %s old, older than max-backup-age %s", humanAge(time.Duration(st.AgeSeconds)*time.Second), ageLimit(j.o.MaxBackupAge)))
			}
		}
	}
	if len(problems) > 0 {
		return fleet.Failed, d, errors.New(strings.Join(problems, "; "))
	}
	if d.noteworthy() {
		return fleet.Succeeded, d, nil
	}
	return fleet.UpToDate, d, nil
}

// Finish finds the drift, which only the whole fleet shows: a tenant found
// drifted is no longer up to date, and fails with fail-on-drift. Results
// are the run's own, so the report reads what Finish changed.
func (j *Job) Finish(_ context.Context, results []fleet.Result) error {
	j.analyse(results)
	for i := range results {
		r := &results[i]
		d, _ := r.Detail.(*Detail)
		if d == nil || !d.Drifted {
			continue
		}
		if j.o.FailOnDrift && r.Status != fleet.Failed {
			r.Status = fleet.Failed
			r.Err = fmt.Errorf("schema drift (fail-on-drift): %s", strings.Join(d.Drift, "; "))
		} else if r.Status == fleet.UpToDate {
			r.Status = fleet.Succeeded
		}
	}
	return nil
}

// analyse groups the tenants' schemas once, whether Finish ran or not (a
// run stopped early is still reported).
func (j *Job) analyse(results []fleet.Result) {
	j.analysis.Do(func() {
		var ds []*Detail
		for _, r := range results {
			if d, _ := r.Detail.(*Detail); d != nil {
				ds = append(ds, d)
			}
		}
		j.groups = findDrift(ds)
	})
}
