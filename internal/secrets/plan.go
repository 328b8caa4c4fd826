package secrets

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

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
	o      options
	gh     *github.Client
	fp     fingerprinter
	owner  string // this configuration's record tag (fingerprinter.owner)
	gate   *readGate
	repoID int64 // organization target with selected visibility

	top        *state                        // repository or organization
	visible    map[string]bool               // organization secrets the repository sees
	envs       map[string]github.Environment // by lower-cased name
	envStates  map[string]*state             // by lower-cased environment name
	envStateMu sync.Mutex
}

func newPlanner(ctx context.Context, env mode.Env, o options) (*planner, error) {
	var waits atomic.Int64
	onWait := func(w github.Wait) {
		if env.Warn != nil && waits.Add(1) <= maxWaitWarnings {
			env.Warn("GitHub %s: waiting %s before %s", w.Reason, w.Duration.Round(time.Second), w.Op)
		}
	}
	c, err := github.New(github.Options{BaseURL: o.apiURL, Token: o.token, UserAgent: "pgfleet", OnWait: onWait})
	if err != nil {
		return nil, &input.Error{Input: "github-api-url", Problem: err.Error()}
	}
	fp := newFingerprinter(o.fpKey, env.Config.Neon.APIKey)
	return &planner{
		env:   env,
		o:     o,
		gh:    c,
		fp:    fp,
		owner: fp.owner(string(o.kind), o.secretName.raw, o.envName.raw, o.pooled),
		gate:  newReadGate(maxReadsPerMinute, time.Minute),
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

// where identifies a target inside a fingerprint, so that the same value
// in another place (or written with another visibility) differs.
func where(t github.Target) string {
	switch t.Kind {
	case github.KindEnvironment:
		return strings.ToLower("environment/" + t.Owner + "/" + t.Repo + "/" + t.Environment)
	case github.KindOrganization:
		return strings.ToLower(fmt.Sprintf("organization/%s/%s/%v", t.Org, t.Visibility, t.SelectedRepositoryIDs))
	}
	return strings.ToLower("repository/" + t.Owner + "/" + t.Repo)
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

// readTop reads the repository's or organization's secrets and variables,
// or the repository's environments.
func (p *planner) readTop(ctx context.Context) error {
	switch p.o.kind {
	case github.KindEnvironment:
		envs, err := p.gh.ListEnvironments(ctx, p.o.owner, p.o.repo)
		if err != nil {
			return p.readError(err)
		}
		p.envs = map[string]github.Environment{}
		for _, e := range envs {
			p.envs[strings.ToLower(e.Name)] = e
		}
		p.envStates = map[string]*state{}
		return nil
	case github.KindOrganization:
		if p.o.visibility == github.VisibilitySelected {
			id, err := p.gh.RepositoryID(ctx, p.o.owner, p.o.repo)
			if err != nil {
				return p.readError(err)
			}
			p.repoID = id
		}
		visible, err := p.gh.ListRepoOrgSecrets(ctx, p.o.owner, p.o.repo)
		if err != nil {
			return p.readError(err)
		}
		p.visible = map[string]bool{}
		for _, s := range visible {
			p.visible[strings.ToUpper(s.Name)] = true
		}
	}
	t := p.topTarget()
	secrets, err := p.gh.ListSecrets(ctx, t)
	if err != nil {
		return p.readError(err)
	}
	vars, err := p.gh.ListVariables(ctx, t)
	if err != nil {
		return p.readError(err)
	}
	p.top = newState(secrets, vars)
	return nil
}

// readError turns a failed read into input the user must fix where it is
// one (a token without access, a repository that is not there).
func (p *planner) readError(err error) error {
	switch github.StatusOf(err) {
	case http.StatusUnauthorized:
		return &input.Error{Input: "github-token", Problem: fmt.Sprintf("GitHub rejected the token: %v", err)}
	case http.StatusForbidden:
		return &input.Error{Input: "github-token", Problem: fmt.Sprintf("the token may not read %s's Actions secrets and variables: %v", p.o.owner+"/"+p.o.repo, err)}
	case http.StatusNotFound:
		return &input.Error{Input: "repository", Problem: fmt.Sprintf("%s/%s not found, or not visible to the token: %v", p.o.owner, p.o.repo, err)}
	}
	return fmt.Errorf("read GitHub before writing: %w", err)
}

// listFleet lists the selected tenants.
func (p *planner) listFleet(ctx context.Context) ([]*item, error) {
	var items []*item
	err := p.env.Source(p.o.pooled).Tenants(ctx, func(t tenant.Tenant) bool {
		items = append(items, &item{t: t})
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return items, nil
}

// resolve fetches every connection string. A tenant whose connection
// string cannot be had stays in the plan (its name is still taken) and
// fails when the runner reaches it.
func (p *planner) resolve(ctx context.Context, items []*item) error {
	workers := max(1, min(p.env.Config.Concurrency, len(items), 50))
	next := make(chan *item)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if it.t.Resolve == nil {
					continue
				}
				u, err := it.t.Resolve(ctx)
				it.t.Resolve = nil
				if err != nil {
					it.err = fmt.Errorf("resolve connection string: %w", err)
					continue
				}
				it.t.URL = u
			}
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, it := range items {
		if it.t.URL != "" {
			p.env.Secret(tenant.Password(it.t.URL))
			p.env.Secret(it.t.URL) // the secret's whole value
		}
		if it.err == nil && it.t.URL == "" {
			it.err = errors.New("no connection string")
		}
		if it.err == nil && len(it.t.URL) > github.MaxSecretValueSize {
			it.err = fmt.Errorf("the connection string is %d bytes, more than the %d a GitHub secret holds", len(it.t.URL), github.MaxSecretValueSize)
		}
	}
	return nil
}

// maxListed is how many projects a message names before it counts the rest.
const maxListed = 5

func projectLabel(t tenant.Tenant) string {
	if t.Name == "" || t.Name == t.ID {
		return fmt.Sprintf("%q", t.ID)
	}
	return fmt.Sprintf("%q (%s)", t.Name, t.ID)
}

func listed(labels []string) string {
	if len(labels) <= maxListed {
		return strings.Join(labels, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(labels[:maxListed], ", "), len(labels)-maxListed)
}

// name computes every tenant's secret, variable and environment names and
// refuses invalid and colliding ones, naming the projects.
func (p *planner) name(items []*item) error {
	var problems []error
	bad := map[string][]string{} // problem kind -> project labels, for the summary line
	var badOrder []string
	note := func(kind, label string) {
		if bad[kind] == nil {
			badOrder = append(badOrder, kind)
		}
		bad[kind] = append(bad[kind], label)
	}
	secretInput := "secret-name"
	suggestion := "a template that gives every project a valid name, such as TENANT_{{NAME}}_DATABASE_URL"
	if p.o.kind == github.KindEnvironment {
		suggestion = "a template such as DATABASE_URL or TENANT_{{NAME}}_DATABASE_URL"
	}
	bySecret := map[string]*item{}
	byEnv := map[string]*item{}
	for _, it := range items {
		t := it.t
		projectName := t.Name
		if projectName == "" {
			projectName = t.ID
		}
		label := projectLabel(t)
		if p.o.kind == github.KindEnvironment {
			env, empty := p.o.envName.expand(projectName, t.ID, false)
			switch {
			case empty != "":
				note(fmt.Sprintf("environment-name: %s comes out empty for these projects; use a template with {{id}}, such as tenant-{{id}}", empty), label)
				continue
			case github.ValidEnvironmentName(env) != nil:
				note(fmt.Sprintf("environment-name: invalid environment names (%s); use a template such as tenant-{{slug}} or tenant-{{id}}", strings.TrimPrefix(github.ValidEnvironmentName(env).Error(), "invalid name: ")), label)
				continue
			}
			if other := byEnv[strings.ToLower(env)]; other != nil {
				problems = append(problems, &input.Error{Input: "environment-name", Problem: fmt.Sprintf("projects %s and %s both map to environment %q (GitHub ignores case): use a template with {{id}}, such as tenant-{{slug}}-{{id}}", projectLabel(other.t), label, env)})
				continue
			}
			byEnv[strings.ToLower(env)] = it
			it.env = env
			it.target = github.EnvTarget(p.o.owner, p.o.repo, env)
		} else {
			it.target = p.topTarget()
		}
		secret, empty := p.o.secretName.expand(projectName, t.ID, true)
		secret = strings.ToUpper(secret)
		if empty != "" {
			note(fmt.Sprintf("%s: %s comes out empty for these projects; use a template with {{id}}, such as TENANT_{{id}}_DATABASE_URL", secretInput, empty), label)
			continue
		}
		if err := github.ValidSecretName(secret); err != nil {
			note(fmt.Sprintf("%s: invalid secret names (a secret name has only letters, digits and _, and starts with neither a digit nor GITHUB_); use %s", secretInput, suggestion), fmt.Sprintf("%s -> %s", label, quoteName(secret)))
			continue
		}
		variable := variablePrefix + secret
		if err := github.ValidVariableName(variable); err != nil {
			note(fmt.Sprintf("%s: names too long for their fingerprint variable %s<name> (at most %d characters); use a shorter template", secretInput, variablePrefix, github.MaxSecretNameLength-len(variablePrefix)), label)
			continue
		}
		key := strings.ToLower(it.env) + "/" + secret
		if other := bySecret[key]; other != nil && p.o.kind != github.KindEnvironment {
			problems = append(problems, &input.Error{Input: secretInput, Problem: fmt.Sprintf("projects %s and %s both map to secret %s: use a template with {{id}}, such as {{NAME}}_{{id}}_DATABASE_URL", projectLabel(other.t), label, secret)})
			continue
		}
		bySecret[key] = it
		it.secret, it.variable = secret, variable
	}
	for _, kind := range badOrder {
		in, problem, _ := strings.Cut(kind, ": ")
		problems = append(problems, &input.Error{Input: in, Problem: problem + ": " + listed(bad[kind])})
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	return nil
}

// quoteName shows a name that may hold anything, for a message.
func quoteName(s string) string {
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// readEnvironments reads the secrets and variables of every planned
// environment that exists, and (for prune) of every other environment this
// run's template could have made.
func (p *planner) readEnvironments(ctx context.Context, items []*item) error {
	want := map[string]bool{}
	var names []string
	for _, it := range items {
		if it.env == "" {
			continue
		}
		if _, ok := p.envs[strings.ToLower(it.env)]; ok {
			if !want[strings.ToLower(it.env)] {
				names = append(names, it.env)
			}
			want[strings.ToLower(it.env)] = true
		} else {
			it.envMissing = true
		}
	}
	if p.o.prune {
		pattern := p.o.envName.pattern(false)
		for lower, e := range p.envs {
			if !want[lower] && pattern.MatchString(e.Name) {
				want[lower] = true
				names = append(names, e.Name)
			}
		}
	}
	sort.Strings(names)
	return p.each(ctx, names, func(ctx context.Context, env string) error {
		t := github.EnvTarget(p.o.owner, p.o.repo, env)
		if err := p.gate.wait(ctx); err != nil {
			return err
		}
		secrets, err := p.gh.ListSecrets(ctx, t)
		if err != nil {
			return p.readError(err)
		}
		if err := p.gate.wait(ctx); err != nil {
			return err
		}
		vars, err := p.gh.ListVariables(ctx, t)
		if err != nil {
			return p.readError(err)
		}
		p.envStateMu.Lock()
		p.envStates[strings.ToLower(env)] = newState(secrets, vars)
		p.envStateMu.Unlock()
		return nil
	})
}

// readWorkers is how many GitHub reads Prepare has in flight (GitHub allows
// 100 concurrent requests; reads cost it little, but the points add up).
const readWorkers = 8

// each runs fn for every name on a few goroutines and returns the first
// error.
func (p *planner) each(ctx context.Context, names []string, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan string)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range min(readWorkers, max(1, len(names))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				if err := fn(ctx, name); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for _, n := range names {
		select {
		case next <- n:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
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

// checkCapacity refuses a plan the target cannot hold: GitHub's limits
// counting what is there already, and what would fit instead.
func (p *planner) checkCapacity(items []*item) error {
	var problems []error
	secretOf := func(it *item) string { return it.secret }
	variableOf := func(it *item) string { return it.variable }
	switch p.o.kind {
	case github.KindRepository, github.KindOrganization:
		t := p.topTarget()
		secrets := fits(items, secretOf, p.top.secrets, t.MaxSecrets(), "secrets in "+t.String())
		vars := fits(items, variableOf, p.top.vars, t.MaxVariables(), "variables in "+t.String()+" (pgfleet keeps a fingerprint variable beside each secret)")
		problems = append(problems, secrets, vars)
		if p.o.kind == github.KindOrganization {
			seen := map[string]bool{}
			for n := range p.visible {
				seen[n] = true
			}
			problems = append(problems, fits(items, secretOf, seen, github.MaxVisibleOrgSecrets,
				fmt.Sprintf("organization secrets visible to %s/%s (a repository sees only the first %d, whatever their visibility)", p.o.owner, p.o.repo, github.MaxVisibleOrgSecrets)))
		}
	case github.KindEnvironment:
		var full []string
		for _, it := range items {
			if it.secret == "" {
				continue
			}
			s := p.stateOf(it)
			secrets, vars := len(s.secrets), len(s.vars)
			if _, ok := s.secrets[it.secret]; !ok {
				secrets++
			}
			if _, ok := s.vars[it.variable]; !ok {
				vars++
			}
			if secrets > github.MaxEnvironmentSecrets || vars > github.MaxEnvironmentVariables {
				full = append(full, fmt.Sprintf("%s (environment %s holds %d secrets and %d variables)", projectLabel(it.t), it.env, len(s.secrets), len(s.vars)))
			}
		}
		if len(full) > 0 {
			problems = append(problems, &input.Error{Input: "secret-target", Problem: fmt.Sprintf("an environment holds at most %d secrets and %d variables (pgfleet adds a fingerprint variable beside each secret), and these are full: %s; make room in them, or use an environment-name template that gives new environments", github.MaxEnvironmentSecrets, github.MaxEnvironmentVariables, listed(full))})
		}
	}
	problems = slices.DeleteFunc(problems, func(e error) bool { return e == nil })
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	return nil
}

// fits checks that the names the items need (nameOf), with those already
// there (have, by name), stay within limit; else it says how many fit,
// what would, and which projects are beyond the limit.
func fits[V any](items []*item, nameOf func(*item) string, have map[string]V, limit int, what string) error {
	var extra []*item
	for _, it := range items {
		if n := nameOf(it); n != "" {
			if _, ok := have[n]; !ok {
				extra = append(extra, it)
			}
		}
	}
	if len(have)+len(extra) <= limit {
		return nil
	}
	room := max(0, limit-len(have))
	var over []string
	for _, it := range extra[room:] {
		over = append(over, projectLabel(it.t))
	}
	instead := "secret-target: environment would fit (one environment per tenant, each holding its own secret: the way past 100 tenants); or split the fleet with projects or shard (e.g. shard 1/2 and 2/2, each into its own repository)"
	return &input.Error{Input: "secret-target", Problem: fmt.Sprintf("%d tenants need %d more %s, which holds %d already: GitHub allows %d, so %d more fit. %s. Beyond the limit: %s",
		len(items), len(extra), what, len(have), limit, room, instead, listed(over))}
}

// decide compares what GitHub holds with what would be written.
func (p *planner) decide(it *item) {
	if it.err != nil || it.secret == "" {
		return
	}
	s := p.stateOf(it)
	it.sum = p.fp.sum(where(it.target), it.secret, it.t.URL)
	secret, hasSecret := s.secrets[it.secret]
	v, hasVar := s.vars[it.variable]
	it.varExists = hasVar
	it.action, it.why = actUpdate, ""
	switch {
	case it.envMissing:
		it.action, it.why = actCreate, "new environment"
	case !hasSecret && hasVar:
		it.action, it.why = actCreate, "deleted outside pgfleet"
	case !hasSecret:
		it.action, it.why = actCreate, "new"
	case !hasVar:
		it.why = "no fingerprint recorded"
	default:
		sum, at, _, ok := parseRecord(v.Value)
		switch {
		case !ok:
			it.why = "fingerprint variable unreadable"
		case !at.Equal(secret.UpdatedAt.UTC().Truncate(time.Second)):
			it.why = "changed outside pgfleet"
		case !hmac.Equal([]byte(sum), []byte(it.sum)):
			it.why = "connection string changed"
		default:
			it.action = actUnchanged
		}
	}
}

// pruneCandidates are the secrets pgfleet wrote (their fingerprint variable
// is there) whose names this run's templates produce but no current tenant
// has, and fingerprint variables left without their secret.
func (p *planner) pruneCandidates(items []*item) []*pruneItem {
	secretPattern := p.o.secretName.pattern(true)
	currentNames := map[string]bool{}
	for _, it := range items {
		currentNames[strings.ToLower(it.env)+"/"+it.secret] = true
	}
	var out []*pruneItem
	scan := func(t github.Target, env string, s *state) {
		var names []string
		for n := range s.vars {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, v := range names {
			secret, ok := strings.CutPrefix(v, variablePrefix)
			if !ok || !secretPattern.MatchString(secret) || currentNames[strings.ToLower(env)+"/"+secret] {
				continue
			}
			if _, _, owner, ok := parseRecord(s.vars[v].Value); !ok || owner != p.owner {
				continue // written by another configuration (or unreadable): not ours to delete
			}
			c := &pruneItem{target: t, variable: v}
			if _, ok := s.secrets[secret]; ok {
				c.secret = secret
			}
			out = append(out, c)
		}
	}
	if p.o.kind != github.KindEnvironment {
		scan(p.topTarget(), "", p.top)
		return out
	}
	var envs []string
	for lower := range p.envStates {
		envs = append(envs, lower)
	}
	sort.Strings(envs)
	for _, lower := range envs {
		e := p.envs[lower]
		scan(github.EnvTarget(p.o.owner, p.o.repo, e.Name), lower, p.envStates[lower])
	}
	return out
}

// maxReadsPerMinute keeps Prepare's reads well inside GitHub's 900 points a
// minute for REST requests (a read costs 1).
const maxReadsPerMinute = 750

// readGate lets at most n reads start in any window.
type readGate struct {
	mu     sync.Mutex
	n      int
	window time.Duration
	starts []time.Time
}

func newReadGate(n int, window time.Duration) *readGate { return &readGate{n: n, window: window} }

func (g *readGate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		now := time.Now()
		i := 0
		for i < len(g.starts) && now.Sub(g.starts[i]) >= g.window {
			i++
		}
		g.starts = g.starts[i:]
		if len(g.starts) < g.n {
			g.starts = append(g.starts, now)
			g.mu.Unlock()
			return nil
		}
		d := g.window - now.Sub(g.starts[0])
		g.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
