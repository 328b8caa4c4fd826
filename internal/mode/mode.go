// Package mode is the one interface every pgfleet mode implements. The
// runner (internal/fleet) and the report (internal/report) know only this
// shape; internal/app picks a mode from its registry by name. A mode is one
// package (internal/migrate, ...) and imports the spine, never another mode.
package mode

import (
	"context"

	"github.com/pgfleet/pgfleet/internal/config"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/neon"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Mode is one thing pgfleet does to every tenant of a fleet.
type Mode interface {
	// Name is the mode input's value and the CLI verb, e.g. "migrate".
	Name() string
	// Synopsis is one line for --help.
	Synopsis() string
	// Inputs are the inputs this mode reads beyond the shared ones, each
	// a package-level *input.Input its Prepare reads by value.
	Inputs() []*input.Input
	// Outputs are the outputs this mode sets beyond the shared ones.
	Outputs() []input.Output
	// Prepare reads the mode's inputs and checks everything it can before
	// any tenant is touched. It ends one way: bad input is recorded in
	// env.Inputs (Bad, BadErr) and Prepare returns env.Inputs.Err(), or an
	// *input.Error for a problem found later; the run exits 2, naming the
	// input. Any other error is an outage met while preparing (listing the
	// fleet, a bucket, an API): the run exits 1 with it as the cause.
	Prepare(ctx context.Context, env Env) (Job, error)
}

// Job is a prepared mode: the work it does per tenant and how its results
// read.
type Job interface {
	// Describe says what the run is about to do, for its first log line.
	Describe() string
	// DryRun reports that the job changes nothing.
	DryRun() bool
	// Work does one tenant's job (see fleet.Work).
	Work(ctx context.Context, t tenant.Tenant) (fleet.Status, fleet.Detail, error)
	report.View
}

// Env is what a mode may use to prepare.
type Env struct {
	Inputs *input.Values // this run's inputs: the mode reads its own here
	Config config.Config // the shared inputs, validated
	// Workspace is where relative paths of the user's files are resolved
	// (GITHUB_WORKSPACE in Actions, the working directory on the CLI).
	Workspace string
	Getenv    func(string) string
	// Version is pgfleet's own version, for what a mode records (a backup
	// manifest's tool).
	Version string
	// Secret registers a credential the mode learns (a token, a key), so
	// nothing written can carry it.
	Secret func(string)
	// Scrub removes every registered credential from text a mode sends
	// somewhere the run's own output does not go (a pull request comment).
	Scrub func(string) string
	// Warn prints a warning (an annotation in Actions).
	Warn func(format string, a ...any)
	// Log prints a line to the run's log (scrubbed), for work a job does
	// outside a tenant's Work, where the runner prints nothing (backup's
	// restore drill in Finish).
	Log func(format string, a ...any)
	// Source builds a source of the selected tenants; pooled asks Neon for
	// pooled connection strings. The run uses Source(false) unless the job
	// is a SourceOverride.
	Source func(pooled bool) tenant.Source
	// Neon is the run's one Neon API client (one rate limiter for every
	// request), for a mode that calls the API itself (migrate's rehearse
	// makes branches). nil when tenants come from database-urls.
	Neon func() *neon.Client
}

// SourceOverride is a Job that chose the tenants the runner works on: a
// mode that must see the whole fleet before touching any tenant (to check a
// plan) lists it in Prepare and hands the runner what it listed.
type SourceOverride interface {
	Source() tenant.Source
}

// Finisher is a Job with work to do once every tenant is done (sync-secrets
// prunes then). It runs only when every tenant was reached: not when the run
// was cancelled, stopped early (canary, max-failures) or listing failed. Its
// error fails the run and is reported.
type Finisher interface {
	Finish(ctx context.Context, results []fleet.Result) error
}

// Progresser is a Job with figures of its own for the runner's progress
// lines, which come every few seconds while tenants run (backup: bytes
// dumped so far and the rate), so a long run shows it is moving.
type Progresser interface {
	ProgressNote() string
}
