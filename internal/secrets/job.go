package secrets

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Pacing. A plan of at most burstWrites writes goes at GitHub's per-minute
// pace (github.DefaultWriteGap, 80 a minute) and stays inside the 500 writes
// of any hour; a bigger plan is spread over the hour from the start
// (spreadGap, 480 an hour), so that no tenant waits most of an hour for the
// hourly budget (which tenant-timeout would not allow) and the run moves on
// steadily until max-duration.
const (
	burstWrites = 450
	spreadGap   = time.Hour / 480
)

// maxWaitWarnings is how many of GitHub's rate-limit pauses are announced
// one by one; the summary counts them all.
const maxWaitWarnings = 5

// Job writes the planned secrets.
type Job struct {
	o        options
	warn     func(format string, a ...any)
	reads    *github.Client // Prepare's reads
	gh       *github.Client // the writes, and the reads that go with them
	plan     *plan
	deadline time.Time // max-duration from the start of the run
	gap      time.Duration
	tenants  []tenant.Tenant

	mu          sync.Mutex
	current     int  // tenants whose secret is current
	outOfTime   bool // a tenant was left because max-duration was spent
	pruneNote   string
	envsCreated int
	waits       int
}

func newJob(env mode.Env, o options, p *planner, pl *plan, deadline time.Time) (*Job, error) {
	j := &Job{o: o, warn: env.Warn, reads: p.gh, plan: pl, deadline: deadline}
	if j.warn == nil {
		j.warn = func(string, ...any) {}
	}
	j.gap = github.DefaultWriteGap
	if pl.writes > burstWrites {
		j.gap = spreadGap
	}
	if o.writeGapTest {
		j.gap = o.writeGap
	}
	c, err := github.New(github.Options{BaseURL: o.apiURL, Token: o.token, UserAgent: "pgfleet", WriteGap: j.gap, OnWait: j.onWait})
	if err != nil {
		return nil, err
	}
	j.gh = c
	for _, it := range pl.items {
		t := it.t
		t.Resolve = nil
		j.tenants = append(j.tenants, t)
	}
	if !o.dryRun && pl.writingItems > 0 {
		// Writes go one at a time, so a tenant may wait for every tenant
		// started with it: that wait counts against its tenant-timeout.
		gap := max(j.gap, 0)
		worst := time.Duration(min(env.Config.Concurrency, pl.writingItems)*pl.maxItemWrites) * gap
		if tt := env.Config.TenantTimeout; tt > 0 && worst > tt*8/10 {
			j.warn("with concurrency %d and %s between writes, a tenant may wait about %s for its turn to write, close to or beyond tenant-timeout %s: lower concurrency (sync-secrets writes one at a time anyway) or raise tenant-timeout",
				env.Config.Concurrency, gap, worst.Round(time.Second), tt)
		}
	}
	return j, nil
}

func (j *Job) onWait(w github.Wait) {
	j.mu.Lock()
	j.waits++
	n := j.waits
	j.mu.Unlock()
	switch {
	case n < maxWaitWarnings:
		j.warn("GitHub %s: waiting %s before %s", w.Reason, w.Duration.Round(time.Second), w.Op)
	case n == maxWaitWarnings:
		j.warn("GitHub %s: waiting %s before %s (further waits are counted in the summary, not announced)", w.Reason, w.Duration.Round(time.Second), w.Op)
	}
}

// Source implements mode.SourceOverride: the runner works on exactly the
// tenants the plan was checked for, connection strings resolved.
func (j *Job) Source() tenant.Source { return tenant.Static(j.tenants) }

func (j *Job) Describe() string {
	var create, update, unchanged, failed int
	for _, it := range j.plan.items {
		switch {
		case it.err != nil:
			failed++
		case it.action == actCreate:
			create++
		case it.action == actUpdate:
			update++
		default:
			unchanged++
		}
	}
	s := fmt.Sprintf("%s to %s; plan: %d to create, %d to update, %d unchanged", report.Plural(len(j.plan.items), "tenant's connection string", "tenants' connection strings"), describeTarget(j.o), create, update, unchanged)
	if failed > 0 {
		s += fmt.Sprintf(", %d without a connection string", failed)
	}
	if j.o.prune {
		s += fmt.Sprintf(", %d to delete", len(j.plan.prune))
	}
	if j.o.dryRun {
		return s + fmt.Sprintf("; %s needed; dry run: nothing will be written", report.Plural(j.plan.writes, "write", "writes"))
	}
	s += fmt.Sprintf("; %s, one at a time, %s apart", report.Plural(j.plan.writes, "write", "writes"), max(j.gap, 0))
	if need := time.Duration(j.plan.writes) * max(j.gap, 0); need > 0 {
		s += fmt.Sprintf(" (about %s)", need.Round(time.Second))
		if left := time.Until(j.deadline); need > left {
			s += fmt.Sprintf("; that is more than the %s left of max-duration %s: what is not written is left for the next run", left.Round(time.Second), j.o.maxDuration)
		}
	}
	return s
}

func (j *Job) DryRun() bool { return j.o.dryRun }

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
	bctx, cancel := context.WithDeadline(ctx, j.deadline)
	defer cancel()
	err := j.write(ctx, bctx, it, d)
	switch {
	case err == nil:
		return fleet.Succeeded, d, nil
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

// write creates the environment if missing, writes the secret, then
// records its fingerprint and updated_at in the variable beside it. The
// first write must start within max-duration (budget); once a tenant has
// begun, it is finished, so that no tenant is left half written.
func (j *Job) write(ctx, budget context.Context, it *item, d *Detail) error {
	// sent counts a write GitHub answered (a refused wait sends nothing).
	sent := func(err error) error {
		if err == nil || github.StatusOf(err) != 0 {
			d.Writes++
		}
		return err
	}
	first := budget
	if it.envMissing {
		if _, err := j.gh.CreateEnvironment(first, j.o.owner, j.o.repo, it.env); sent(err) != nil {
			return err
		}
		d.EnvironmentCreated = true
		j.mu.Lock()
		j.envsCreated++
		j.mu.Unlock()
		first = ctx
	}
	res, err := j.gh.PutSecret(first, it.target, it.secret, it.t.URL)
	if sent(err) != nil {
		return err
	}
	d.Action, d.Why = didUpdate, it.why
	if res.Created {
		d.Action = didCreate
	}
	at := res.Secret.UpdatedAt.UTC()
	d.UpdatedAt = &at
	record := encodeRecord(it.sum, res.Secret.UpdatedAt, j.plan.owner)
	if it.varExists {
		err = sent(j.gh.UpdateVariable(ctx, it.target, it.variable, record))
		if github.IsNotFound(err) {
			err = sent(j.gh.CreateVariable(ctx, it.target, it.variable, record))
		}
	} else {
		err = sent(j.gh.CreateVariable(ctx, it.target, it.variable, record))
		if github.StatusOf(err) == http.StatusConflict {
			err = sent(j.gh.UpdateVariable(ctx, it.target, it.variable, record))
		}
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

// budgetEnded tells an error caused by max-duration (a wait that would
// pass it, or a request it cut short) from a failure. The tenant's own
// timeout or the run's cancellation is not the budget.
func (j *Job) budgetEnded(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var w *github.WaitError
	if errors.As(err, &w) {
		dl, ok := ctx.Deadline()
		return !ok || !j.deadline.After(dl)
	}
	return errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(j.deadline)
}

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
	bctx, cancel := context.WithDeadline(ctx, j.deadline)
	defer cancel()
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

func (j *Job) Columns() []report.Column {
	action := report.Column{Title: "action"}
	if j.o.dryRun {
		action.Title = "would"
	}
	if j.o.kind == github.KindEnvironment {
		return []report.Column{{Title: "environment"}, {Title: "secret"}, action}
	}
	return []report.Column{{Title: "secret"}, action}
}

// tally counts the results by what happened to each secret.
type tally struct {
	created, updated, unchanged, left, failed, remaining, deleted, writes int
}

func (j *Job) tally(results []fleet.Result) tally {
	var t tally
	for _, r := range results {
		d, _ := r.Detail.(*Detail)
		if d == nil || !d.isCurrent() {
			t.remaining++
		}
		if d == nil {
			continue
		}
		t.writes += d.Writes
		switch d.Action {
		case didCreate, wouldCreate:
			t.created++
		case didUpdate, wouldUpdate:
			t.updated++
		case didNothing:
			t.unchanged++
		case didLeave:
			t.left++
		case didFail:
			t.failed++
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range j.plan.prune {
		if c.secret != "" && (c.done || j.o.dryRun) {
			t.deleted++
		}
		if c.done {
			t.writes += c.writes()
		}
	}
	return t
}

// Outputs: created, updated, unchanged, deleted, remaining.
func (j *Job) Outputs(results []fleet.Result) map[string]string {
	t := j.tally(results)
	return map[string]string{
		"created":   strconv.Itoa(t.created),
		"updated":   strconv.Itoa(t.updated),
		"unchanged": strconv.Itoa(t.unchanged),
		"deleted":   strconv.Itoa(t.deleted),
		"remaining": strconv.Itoa(t.remaining),
	}
}

// Sections: the secrets written and GitHub's share of the run, and the
// secrets prune deleted.
func (j *Job) Sections(results []fleet.Result) []report.Section {
	t := j.tally(results)
	verb := func(done, dry string) string {
		if j.o.dryRun {
			return dry
		}
		return done
	}
	sec := report.Section{
		Title:   "Secrets",
		Columns: []report.Column{{Title: "secrets"}, {Title: "tenants", Numeric: true}},
		Rows: [][]string{
			{verb("created", "would be created"), strconv.Itoa(t.created)},
			{verb("updated", "would be updated"), strconv.Itoa(t.updated)},
			{"unchanged (nothing written)", strconv.Itoa(t.unchanged)},
		},
	}
	if t.left > 0 {
		sec.Rows = append(sec.Rows, []string{"left for the next run", strconv.Itoa(t.left)})
	}
	if t.failed > 0 {
		sec.Rows = append(sec.Rows, []string{"failed", strconv.Itoa(t.failed)})
	}
	if j.o.prune {
		sec.Rows = append(sec.Rows, []string{verb("deleted by prune", "would be deleted by prune"), strconv.Itoa(t.deleted)})
	}
	st := j.gh.Stats()
	reads := j.reads.Stats()
	j.mu.Lock()
	outOfTime, pruneNote, envs := j.outOfTime, j.pruneNote, j.envsCreated
	j.mu.Unlock()
	var notes []string
	notes = append(notes, "Where: "+describeTarget(j.o)+".")
	if j.o.dryRun {
		notes = append(notes, fmt.Sprintf("A real run would make %s to GitHub.", report.Plural(j.plan.writes, "write", "writes")))
	} else {
		n := fmt.Sprintf("%s to GitHub (one at a time, %s apart), %s in all", report.Plural(st.Writes, "write", "writes"), max(j.gap, 0), report.Plural(st.Requests+reads.Requests, "request", "requests"))
		if envs > 0 {
			n += fmt.Sprintf("; %s created", report.Plural(envs, "environment", "environments"))
		}
		if rl := st.RateLimited + reads.RateLimited; rl > 0 {
			n += fmt.Sprintf("; %s from GitHub waited out", report.Plural(rl, "rate limit", "rate limits"))
		}
		notes = append(notes, n+".")
	}
	if outOfTime {
		notes = append(notes, fmt.Sprintf("max-duration (%s) was spent: %s left; run again to continue (unchanged tenants cost nothing).", j.o.maxDuration, report.Plural(t.remaining, "tenant", "tenants")))
	}
	if pruneNote != "" {
		notes = append(notes, "Prune "+pruneNote+".")
	}
	sec.Note = strings.Join(notes, " ")
	out := []report.Section{sec}
	if len(j.plan.prune) > 0 {
		ps := report.Section{
			Title:   verb("Deleted by prune", "Prune would delete"),
			Note:    "Secrets pgfleet wrote (a fingerprint variable is beside them) whose names this run's templates produce but no current tenant has; each with its fingerprint variable.",
			Columns: []report.Column{{Title: "secret"}, {Title: "where"}, {Title: "result"}},
		}
		j.mu.Lock()
		for _, c := range j.plan.prune {
			result := "not reached"
			switch {
			case j.o.dryRun:
				result = "would delete"
			case c.done:
				result = "deleted"
			case c.err != nil:
				result = "failed: " + c.err.Error()
			}
			ps.Rows = append(ps.Rows, []string{c.name(), c.target.String(), result})
		}
		j.mu.Unlock()
		out = append(out, ps)
	}
	return out
}
