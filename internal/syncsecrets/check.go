package syncsecrets

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Checking the plan before anything is written: every name valid and
// apart from the others, and room for them all in the target.

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
