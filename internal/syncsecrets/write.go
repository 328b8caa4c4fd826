package syncsecrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Writing one tenant: its environment if missing, its secret, then the
// fingerprint variable beside it, each started within max-duration.

// Work writes one tenant's secret and its fingerprint variable (and its
// environment first, when missing). Prune runs in Finish, after them all.
func (j *Job) Work(ctx context.Context, t tenant.Tenant) (fleet.Status, fleet.Detail, error) {
	status, d, err := j.work(ctx, t)
	j.mu.Lock()
	if d != nil && d.isCurrent() && err == nil {
		j.current++
	}
	j.mu.Unlock()
	if d == nil {
		return status, nil, err
	}
	return status, d, err
}

func (j *Job) work(ctx context.Context, t tenant.Tenant) (fleet.Status, *Detail, error) {
	it := j.plan.byID[t.ID]
	if it == nil {
		return fleet.Failed, nil, fmt.Errorf("tenant %s is not in the plan", t)
	}
	d := &Detail{Secret: it.secret, Target: it.target.String(), Environment: it.env, envTarget: j.o.kind == github.KindEnvironment}
	if it.err != nil {
		d.Action = didFail
		return fleet.Failed, d, it.err
	}
	if it.action == actUnchanged {
		d.Action = didNothing
		return fleet.UpToDate, d, nil
	}
	if j.o.dryRun {
		d.Action, d.Why, d.EnvironmentCreated = wouldUpdate, it.why, it.envMissing
		if it.action == actCreate {
			d.Action = wouldCreate
		}
		return fleet.Succeeded, d, nil
	}
	if j.spent() {
		return j.leave(d)
	}
	err := j.write(ctx, it, d)
	switch {
	case err == nil:
		return fleet.Succeeded, d, nil
	case errors.Is(err, errRecordLeft):
		d.Why = "secret written, its fingerprint variable not: the next run writes the secret again"
		return j.leave(d)
	case j.budgetEnded(ctx, err):
		return j.leave(d)
	}
	d.Action = didFail
	var w *github.WaitError
	if errors.As(err, &w) {
		err = fmt.Errorf("%w (tenant-timeout does not leave room for this wait: raise it, or lower concurrency, since writes go one at a time)", err)
	}
	return fleet.Failed, d, err
}

// errLeft is why a tenant was left: the reason the report shows.
var errLeft = errors.New("left for the next run: max-duration was spent")

// leave ends a tenant that max-duration did not leave time for: skipped,
// not failed; the next run continues with it.
func (j *Job) leave(d *Detail) (fleet.Status, *Detail, error) {
	j.mu.Lock()
	j.outOfTime = true
	j.mu.Unlock()
	d.Action = didLeave
	return fleet.Skipped, d, errLeft
}

// errRecordLeft is a secret written whose fingerprint variable max-duration
// left no time for.
var errRecordLeft = errors.New("max-duration was spent between the secret and its fingerprint variable")

// write creates the environment if missing, writes the secret, then
// records its fingerprint and updated_at in the variable beside it.
//
// No write starts after max-duration (one already sent is let finish, so
// its answer is not lost: the run ends within max-duration and one write).
// The secret starts only while there is room after it for its variable, at
// the pace GitHub allows now: a secret without its record is written again
// by the next run. A tenant cut off after its environment is left with
// the environment, which the next run finds and writes into.
func (j *Job) write(ctx context.Context, it *item, d *Detail) error {
	select {
	case <-j.writing:
		defer func() { j.writing <- struct{}{} }()
	case <-ctx.Done():
		return ctx.Err()
	}
	var refused atomic.Int64
	defer func() { d.Refused = int(refused.Load()) }()
	ctx = github.CountRefusals(ctx, &refused)
	budget := github.WithStartDeadline(ctx, j.deadline)
	// sent counts a write GitHub answered (a refused wait sends nothing).
	sent := func(err error) error {
		if err == nil || github.StatusOf(err) != 0 {
			d.Writes++
		}
		return err
	}
	if it.envMissing {
		if _, err := j.gh.CreateEnvironment(budget, j.o.owner, j.o.repo, it.env); sent(err) != nil {
			return err
		}
		d.EnvironmentCreated = true
		j.mu.Lock()
		j.envsCreated++
		j.mu.Unlock()
	}
	secretBy := github.WithStartDeadline(ctx, j.deadline.Add(-j.roomForVariable()))
	res, err := j.gh.PutSecret(secretBy, it.target, it.secret, it.t.URL)
	if sent(err) != nil {
		return err
	}
	d.Action, d.Why = didUpdate, it.why
	if res.Created {
		d.Action = didCreate
	}
	at := res.Secret.UpdatedAt.UTC()
	d.UpdatedAt = &at
	record := encodeRecord(it.sum, res.Secret.UpdatedAt, j.plan.owner, it.t.ID, it.t.Name)
	if it.varExists {
		err = sent(j.gh.UpdateVariable(budget, it.target, it.variable, record))
		if github.IsNotFound(err) {
			err = sent(j.gh.CreateVariable(budget, it.target, it.variable, record))
		}
	} else {
		err = sent(j.gh.CreateVariable(budget, it.target, it.variable, record))
		if github.StatusOf(err) == http.StatusConflict {
			err = sent(j.gh.UpdateVariable(budget, it.target, it.variable, record))
		}
	}
	if err != nil && j.budgetEnded(ctx, err) {
		return fmt.Errorf("secret %s: %w", it.secret, errRecordLeft)
	}
	if err != nil {
		// The secret is written; without its record the next run writes
		// it again, which is safe.
		return fmt.Errorf("secret %s written, but its fingerprint variable was not (the next run writes the secret again): %w", it.secret, err)
	}
	return nil
}

// spent reports whether max-duration is over.
func (j *Job) spent() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.outOfTime || !time.Now().Before(j.deadline)
}

// roomForVariable is how long before max-duration a secret must start for
// its fingerprint variable to start in time too: the gap between writes
// as it is now, the longest pause GitHub has asked for after refusing a
// write (should it refuse the variable), and the secret's own answer.
func (j *Job) roomForVariable() time.Duration {
	st := j.gh.Stats()
	return st.WriteGap + st.RefusalWait + answerAllowance
}

// answerAllowance is what a write's answer is allowed to take, in
// roomForVariable.
const answerAllowance = 500 * time.Millisecond

// budgetEnded tells an error caused by max-duration (a write it did not
// let start) from a failure. The tenant's own timeout or the run's
// cancellation is not the budget.
func (j *Job) budgetEnded(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var w *github.WaitError
	return errors.As(err, &w) && w.StartDeadline
}
