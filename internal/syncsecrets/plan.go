package syncsecrets

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// The plan: every tenant's secret, what it needs, and what prune would
// delete, read and checked before anything is written.

// action is what a tenant's secret needs.
type action string

const (
	actCreate    action = "create"
	actUpdate    action = "update"
	actUnchanged action = "unchanged"
)

// item is one tenant in the plan.
type item struct {
	t   tenant.Tenant // URL resolved
	err error         // resolving the connection string failed: the tenant fails

	target     github.Target
	env        string // environment name (environment target)
	envMissing bool
	secret     string // as GitHub stores it: upper-cased
	variable   string // its fingerprint variable
	varExists  bool
	sum        string // fingerprint of the value: never printed
	action     action
	why        string
}

// writes is how many writes the item needs.
func (it *item) writes() int {
	if it.err != nil || it.action == actUnchanged {
		return 0
	}
	n := 2 // the secret and its fingerprint variable
	if it.envMissing {
		n++
	}
	return n
}

// pruneItem is a secret (or a leftover fingerprint variable) of no current
// tenant.
type pruneItem struct {
	target   github.Target
	secret   string // "" when only the variable is left
	variable string
	// writtenFor is the tenant the secret was written for, as its record
	// says: "" when the record is older than pgfleet keeping it.
	writtenFor string

	// The outcome, set by the job.
	done bool
	err  error
}

// name is what the summary calls it.
func (p *pruneItem) name() string {
	if p.secret == "" {
		return p.variable + " (variable only)"
	}
	return p.secret
}

// whose names the tenant the secret was written for.
func (p *pruneItem) whose() string {
	if p.writtenFor == "" {
		return "not recorded (written by an older pgfleet)"
	}
	return p.writtenFor
}

// description names what is deleted, where, and for whom it was written:
// for the log of a dry run.
func (p *pruneItem) description() string {
	what := "secret " + p.secret + " (and its fingerprint variable " + p.variable + ")"
	if p.secret == "" {
		what = "fingerprint variable " + p.variable + " (its secret is gone)"
	}
	return fmt.Sprintf("%s in %s, written for tenant %s", what, p.target, p.whose())
}

func (p *pruneItem) writes() int {
	if p.secret == "" {
		return 1
	}
	return 2
}

// plan is the whole run, checked.
type plan struct {
	items []*item
	byID  map[string]*item
	prune []*pruneItem
	owner string // this configuration's tag, written into every record

	writes        int // every write the plan needs, prune included
	writingItems  int // tenants with at least one write
	maxItemWrites int
}

// state is what one target holds, as GitHub lists it.
type state struct {
	secrets map[string]github.Secret   // by upper-cased name
	vars    map[string]github.Variable // by upper-cased name
}

func newState(secrets []github.Secret, vars []github.Variable) *state {
	s := &state{secrets: map[string]github.Secret{}, vars: map[string]github.Variable{}}
	for _, x := range secrets {
		s.secrets[strings.ToUpper(x.Name)] = x
	}
	for _, v := range vars {
		s.vars[strings.ToUpper(v.Name)] = v
	}
	return s
}

// planner reads the fleet and GitHub. It only ever reads.
type planner struct {
	env    mode.Env
	warn   func(format string, a ...any)
	o      options
	gh     *github.Client
	fp     fingerprinter
	owner  string // this configuration's record tag (fingerprinter.owner)
	repoID int64  // organization target with selected visibility

	top       *state                        // repository or organization
	visible   map[string]bool               // organization secrets the repository sees
	envs      map[string]github.Environment // by lower-cased name
	envStates map[string]*state             // by lower-cased environment name
}

// maxWaitWarnings is how many of GitHub's rate-limit pauses are announced
// one by one; the summary counts them all.
const maxWaitWarnings = 5

// waitWarner announces the client's waits, the first few one by one.
type waitWarner struct {
	warn func(format string, a ...any)
	n    atomic.Int64
}

func (w *waitWarner) onWait(x github.Wait) {
	switch n := w.n.Add(1); {
	case n < maxWaitWarnings:
		w.warn("GitHub %s: waiting %s before %s", x.Reason, x.Duration.Round(time.Second), x.Op)
	case n == maxWaitWarnings:
		w.warn("GitHub %s: waiting %s before %s (further waits are counted in the summary, not announced)", x.Reason, x.Duration.Round(time.Second), x.Op)
	}
}

func newPlanner(env mode.Env, o options) (*planner, error) {
	warn := env.Warn
	if warn == nil {
		warn = func(string, ...any) {}
	}
	waits := &waitWarner{warn: warn}
	// The one client of the run: Prepare reads with it, the job writes
	// with it (at the pace the plan calls for, SetWriteGap).
	c, err := github.New(github.Options{BaseURL: o.apiURL, Token: o.token, UserAgent: "pgfleet", OnWait: waits.onWait})
	if err != nil {
		return nil, &input.Error{Input: "github-api-url", Problem: err.Error()}
	}
	fp := newFingerprinter(o.fpKey, env.Config.Neon.APIKey)
	return &planner{
		env:   env,
		warn:  warn,
		o:     o,
		gh:    c,
		fp:    fp,
		owner: fp.owner(string(o.kind), o.secretName.raw, o.envName.raw, o.pooled),
	}, nil
}

// topTarget is the repository or organization; environments hang off the
// repository.
func (p *planner) topTarget() github.Target {
	if p.o.kind == github.KindOrganization {
		var ids []int64
		if p.o.visibility == github.VisibilitySelected {
			ids = []int64{p.repoID}
		}
		return github.OrgTarget(p.o.owner, p.o.visibility, ids...)
	}
	return github.RepoTarget(p.o.owner, p.o.repo)
}
func (p *planner) plan(ctx context.Context) (*plan, error) {
	// GitHub first: a wrong token or repository is found before the fleet
	// is listed.
	if err := p.readTop(ctx); err != nil {
		return nil, err
	}
	items, err := p.listFleet(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.name(items); err != nil {
		return nil, err
	}
	pl := &plan{items: items, byID: map[string]*item{}, owner: p.owner}
	for _, it := range items {
		pl.byID[it.t.ID] = it
	}
	if p.o.kind == github.KindEnvironment {
		if err := p.readEnvironments(ctx, items); err != nil {
			return nil, err
		}
	}
	if err := p.checkCapacity(items); err != nil {
		return nil, err
	}
	// Names and room are settled: only now the connection strings, one
	// Neon request each.
	if err := p.resolve(ctx, items); err != nil {
		return nil, err
	}
	for _, it := range items {
		p.decide(it)
		if w := it.writes(); w > 0 {
			pl.writes += w
			pl.writingItems++
			pl.maxItemWrites = max(pl.maxItemWrites, w)
		}
	}
	if p.o.prune {
		pl.prune = p.pruneCandidates(items)
		for _, c := range pl.prune {
			pl.writes += c.writes()
		}
	}
	return pl, nil
}

// stateOf is what the item's target holds.
func (p *planner) stateOf(it *item) *state {
	if p.o.kind != github.KindEnvironment {
		return p.top
	}
	if s := p.envStates[strings.ToLower(it.env)]; s != nil {
		return s
	}
	return newState(nil, nil) // a new environment holds nothing
}
