package syncsecrets

import (
	"fmt"
	"strings"
	"sync"
	"time"

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

// Job writes the planned secrets.
type Job struct {
	o        options
	warn     func(format string, a ...any)
	gh       *github.Client // Prepare's, which read the plan: one client keeps one picture of GitHub's limits
	plan     *plan
	deadline time.Time // max-duration from the start of the run
	gap      time.Duration
	tenants  []tenant.Tenant
	// writing holds one token: the right to write a tenant. A tenant's
	// writes go out back to back, not between other tenants' (the client
	// sends one write at a time anyway), so that max-duration can cut the
	// run between tenants, not between a secret and its fingerprint.
	writing chan struct{}

	mu          sync.Mutex
	current     int  // tenants whose secret is current
	outOfTime   bool // a tenant was left because max-duration was spent
	pruneNote   string
	envsCreated int
}

func newJob(env mode.Env, o options, p *planner, pl *plan, deadline time.Time) *Job {
	j := &Job{o: o, warn: p.warn, gh: p.gh, plan: pl, deadline: deadline, writing: make(chan struct{}, 1)}
	j.writing <- struct{}{}
	j.gap = github.DefaultWriteGap
	if pl.writes > burstWrites {
		j.gap = spreadGap
	}
	if o.writeGapTest {
		j.gap = o.writeGap
	}
	j.gh.SetWriteGap(j.gap)
	if o.dryRun && len(pl.prune) > 0 {
		// Prune is the one destructive step: its dry run names every
		// deletion, so that a person can read exactly what would go.
		var lines []string
		for _, c := range pl.prune {
			lines = append(lines, c.description())
		}
		j.warn("dry run: prune would delete %s: %s", report.Plural(len(pl.prune), "item", "items"), strings.Join(lines, "; "))
	}
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
	return j
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
