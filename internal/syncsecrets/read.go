package syncsecrets

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/input"
)

// What GitHub holds: the target's secrets and variables, read before
// anything is written.

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
	top, err := p.readState(ctx, p.topTarget())
	p.top = top
	return err
}

// readState lists the secrets and variables of t.
func (p *planner) readState(ctx context.Context, t github.Target) (*state, error) {
	secrets, err := p.gh.ListSecrets(ctx, t)
	if err != nil {
		return nil, p.readError(err)
	}
	vars, err := p.gh.ListVariables(ctx, t)
	if err != nil {
		return nil, p.readError(err)
	}
	return newState(secrets, vars), nil
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
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(readWorkers)
	for _, env := range names {
		g.Go(func() error {
			s, err := p.readState(ctx, github.EnvTarget(p.o.owner, p.o.repo, env))
			if err != nil {
				return err
			}
			mu.Lock()
			p.envStates[strings.ToLower(env)] = s
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// readWorkers is how many GitHub reads Prepare has in flight (GitHub allows
// 100 concurrent requests; reads cost it little, but the points add up,
// and the client keeps them within GitHub's per-minute budget).
const readWorkers = 8
