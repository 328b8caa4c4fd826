package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/migrations"
	"github.com/pgfleet/pgfleet/internal/mode"
)

// RollbackMode is `mode: rollback`: every selected tenant taken back to
// one version, only the tenants that moved past it, with each file's down
// section. It is migrate in the other direction (Options.Rollback): the
// same session, advisory lock and apply loop, so a rollback and a migrate
// never interleave on a tenant.
type RollbackMode struct{}

var _ mode.Mode = RollbackMode{}

func (RollbackMode) Name() string { return "rollback" }

func (RollbackMode) Synopsis() string {
	return "Roll every tenant above rollback-to back to it, newest file first, each down section in its own transaction, under migrate's per-tenant lock."
}

// InputRollbackTo is the version rollback takes the fleet back to.
var InputRollbackTo = &input.Input{Name: "rollback-to",
	Description: "Required for rollback: the version to take the fleet back to (one of the files in migrations-dir, or 0 for none). Tenants above it roll back, newest first; tenants at or below it are up to date."}

func (RollbackMode) Inputs() []*input.Input { return append(sessionInputs(), InputRollbackTo) }

func (RollbackMode) Outputs() []input.Output { return []input.Output{migrations.OutputPending} }

// Prepare checks, before any tenant is touched, that the target is a
// version of the files and that every file above it can be undone.
func (RollbackMode) Prepare(_ context.Context, env mode.Env) (mode.Job, error) {
	in := env.Inputs
	target := in.String(InputRollbackTo)
	if target == "" {
		in.Bad(InputRollbackTo, "required: the version to roll back to (one of the files in %s, or 0 for none)", in.String(migrations.InputDir))
	}
	job, err := prepareSession(env)
	if err != nil {
		return nil, err
	}
	if strings.Trim(target, "0") == "" {
		target = "" // 0: no version at all
	} else if !job.set.Has(target) {
		in.Bad(InputRollbackTo, "%s is not the version of any file in %s (versions from %s to %s), and not 0", target, job.set.Dir, job.set.Files[0].Version, job.set.Latest())
		return nil, in.Err()
	}
	var undoable []string
	for _, f := range job.set.Files {
		if versionLess(target, f.Version) && !f.HasDown {
			undoable = append(undoable, f.Name)
		}
	}
	if len(undoable) > 0 {
		in.Bad(InputRollbackTo, "the down section of %s is missing or empty, so nothing would undo it: write the down section, or roll back to a later version", strings.Join(undoable, ", "))
		return nil, in.Err()
	}
	job.o.Rollback, job.o.RollbackTo = true, target
	return job, nil
}

func (j *Job) describeRollback() string {
	above := 0
	for _, f := range j.set.Files {
		if versionLess(j.o.RollbackTo, f.Version) {
			above++
		}
	}
	s := fmt.Sprintf("roll back to %s: %d of the %d migration files in %s are above it", versionCell(j.o.RollbackTo), above, len(j.set.Files), j.set.Dir)
	if j.o.DryRun {
		s += ", dry run: nothing will be changed"
	}
	return s
}
