package syncsecrets

import (
	"crypto/hmac"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Deciding, from what GitHub holds, which secrets to write and which to
// prune.

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
			if id, name, ok := recordTenant(s.vars[v].Value); ok {
				c.writtenFor = projectLabel(tenant.Tenant{ID: id, Name: name})
			}
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
