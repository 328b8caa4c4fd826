package syncsecrets

import (
	"context"
	"errors"
	"fmt"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/report"
)

// Finish implements mode.Finisher: once every tenant is done, prune, and
// the line telling what is left.
func (j *Job) Finish(ctx context.Context, results []fleet.Result) error {
	if j.o.dryRun {
		return nil
	}
	failed := fleet.Count(results).Failed
	var err error
	if len(j.plan.prune) > 0 {
		switch {
		case failed > 0:
			// Deleting goes last and only on a clean run: a failing
			// tenant may mean the plan's picture of the fleet is wrong.
			j.setPruneNote(fmt.Sprintf("not run: %d tenants failed; the next clean run prunes", failed))
		case j.spent():
			j.setPruneNote("not run: max-duration was spent; the next run prunes")
		case ctx.Err() != nil:
			j.setPruneNote("not run: the run was stopped")
		default:
			err = j.prune(ctx)
		}
	}
	j.mu.Lock()
	remaining, outOfTime := len(j.plan.items)-j.current, j.outOfTime
	j.mu.Unlock()
	if outOfTime {
		j.warn("%s left: run again to continue", report.Plural(remaining, "tenant", "tenants"))
	}
	return err
}

func (j *Job) setPruneNote(s string) {
	j.mu.Lock()
	j.pruneNote = s
	j.mu.Unlock()
}

// prune deletes the planned secrets and their fingerprint variables, one
// at a time, within max-duration.
func (j *Job) prune(ctx context.Context) error {
	bctx := github.WithStartDeadline(ctx, j.deadline) // a delete under way is let finish
	var errs []error
	for i, c := range j.plan.prune {
		err := j.deleteOne(bctx, c)
		if err != nil && j.budgetEnded(ctx, err) {
			j.mu.Lock()
			j.outOfTime = true
			j.pruneNote = fmt.Sprintf("stopped: max-duration was spent with %d still to delete; the next run continues", len(j.plan.prune)-i)
			j.mu.Unlock()
			break
		}
		j.mu.Lock()
		c.done, c.err = err == nil, err
		j.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("prune failed on %d of %d deletions: %w", len(errs), len(j.plan.prune), errors.Join(errs...))
	}
	return nil
}

func (j *Job) deleteOne(ctx context.Context, c *pruneItem) error {
	if c.secret != "" {
		if err := j.gh.DeleteSecret(ctx, c.target, c.secret); err != nil && !github.IsNotFound(err) {
			return err
		}
	}
	if err := j.gh.DeleteVariable(ctx, c.target, c.variable); err != nil && !github.IsNotFound(err) {
		return err
	}
	return nil
}
