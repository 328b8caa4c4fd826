package github

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Kind is where secrets and variables live.
type Kind string

// The kinds of Target.
const (
	KindRepository   Kind = "repository"
	KindEnvironment  Kind = "environment"
	KindOrganization Kind = "organization"
)

// Visibility of an organization secret or variable: which repositories of
// the organization can use it.
const (
	VisibilityPrivate  = "private"  // private and internal repositories
	VisibilityAll      = "all"      // every repository
	VisibilitySelected = "selected" // Target.SelectedRepositoryIDs only
)

// Target is one place that holds Actions secrets and variables: a
// repository, one environment of a repository, or an organization.
// Build one with RepoTarget, EnvTarget or OrgTarget.
type Target struct {
	Kind        Kind
	Owner, Repo string // KindRepository and KindEnvironment
	Environment string // KindEnvironment
	Org         string // KindOrganization

	// Visibility and SelectedRepositoryIDs are sent with every organization
	// secret and variable written (GitHub requires a visibility there).
	Visibility            string
	SelectedRepositoryIDs []int64
}

// RepoTarget is the repository owner/repo.
func RepoTarget(owner, repo string) Target {
	return Target{Kind: KindRepository, Owner: owner, Repo: repo}
}

// EnvTarget is the environment env of the repository owner/repo.
func EnvTarget(owner, repo, env string) Target {
	return Target{Kind: KindEnvironment, Owner: owner, Repo: repo, Environment: env}
}

// OrgTarget is the organization org; visibility is one of the Visibility
// constants, and selected the repositories (by id, see Client.RepositoryID)
// that may use its secrets when visibility is VisibilitySelected.
func OrgTarget(org, visibility string, selected ...int64) Target {
	return Target{Kind: KindOrganization, Org: org, Visibility: visibility, SelectedRepositoryIDs: selected}
}

// String names the target for people: `repository o/r`, `environment
// "tenant-a" of o/r`, `organization acme`.
func (t Target) String() string {
	switch t.Kind {
	case KindRepository:
		return "repository " + t.Owner + "/" + t.Repo
	case KindEnvironment:
		return "environment " + strconv.Quote(t.Environment) + " of " + t.Owner + "/" + t.Repo
	case KindOrganization:
		return "organization " + t.Org
	}
	return "unknown target"
}

// MaxSecrets is how many secrets GitHub lets the target hold.
func (t Target) MaxSecrets() int {
	secrets, _ := t.limits()
	return secrets
}

// MaxVariables is how many variables GitHub lets the target hold.
func (t Target) MaxVariables() int {
	_, variables := t.limits()
	return variables
}

// limits are how many secrets and variables GitHub lets the target hold (a
// repository's limits for a kind it does not know).
func (t Target) limits() (secrets, variables int) {
	switch t.Kind {
	case KindOrganization:
		return MaxOrganizationSecrets, MaxOrganizationVariables
	case KindEnvironment:
		return MaxEnvironmentSecrets, MaxEnvironmentVariables
	}
	return MaxRepositorySecrets, MaxRepositoryVariables
}

// Validate reports a target that cannot be addressed: a missing owner,
// repository or organization, an invalid environment name, or an
// organization target without a valid visibility.
func (t Target) Validate() error {
	switch t.Kind {
	case KindRepository, KindEnvironment:
		if err := validPathSegment("owner", t.Owner); err != nil {
			return err
		}
		if err := validPathSegment("repository", t.Repo); err != nil {
			return err
		}
		if t.Kind == KindEnvironment {
			return ValidEnvironmentName(t.Environment)
		}
		return nil
	case KindOrganization:
		if err := validPathSegment("organization", t.Org); err != nil {
			return err
		}
		switch t.Visibility {
		case VisibilityPrivate, VisibilityAll:
			if len(t.SelectedRepositoryIDs) > 0 {
				return fmt.Errorf("organization %s: selected repositories need visibility %q, not %q", t.Org, VisibilitySelected, t.Visibility)
			}
			return nil
		case VisibilitySelected:
			return nil
		}
		return fmt.Errorf("organization %s: visibility %q is not one of %s, %s, %s", t.Org, t.Visibility, VisibilityPrivate, VisibilityAll, VisibilitySelected)
	}
	return fmt.Errorf("unknown target kind %q", t.Kind)
}

// validPathSegment refuses what cannot be one segment of a URL path. GitHub
// owner and repository names are far stricter; this only keeps a bad input
// from addressing some other resource.
func validPathSegment(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/?#%\\") {
		return fmt.Errorf("%w: %s %q", ErrInvalidName, what, s)
	}
	return nil
}

// base is the path, relative to the API root, under which the target keeps
// things of kind ("secrets" or "variables"): the routes GitHub documents
// today, including /repos/{owner}/{repo}/environments/{environment_name}/…
// for environments (go-github v66 uses the older /repositories/{id}/… ones).
func (t Target) base(kind string) string {
	e := url.PathEscape
	switch t.Kind {
	case KindEnvironment:
		return "repos/" + e(t.Owner) + "/" + e(t.Repo) + "/environments/" + e(t.Environment) + "/" + kind
	case KindOrganization:
		return "orgs/" + e(t.Org) + "/actions/" + kind
	}
	return "repos/" + e(t.Owner) + "/" + e(t.Repo) + "/actions/" + kind
}

func (t Target) secretsPath() string { return t.base("secrets") }

func (t Target) secretPath(name string) string { return t.base("secrets") + "/" + url.PathEscape(name) }

func (t Target) variablesPath() string { return t.base("variables") }

func (t Target) variablePath(name string) string {
	return t.base("variables") + "/" + url.PathEscape(name)
}

func (t Target) isOrg() bool { return t.Kind == KindOrganization }
