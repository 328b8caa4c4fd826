package github

import (
	"context"
	"net/http"
	"net/url"
	"time"

	gh "github.com/google/go-github/v66/github"
)

// Environment is one deployment environment of a repository.
type Environment struct {
	ID        int64
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// environmentsPerPage is the largest page GitHub serves for environments.
const environmentsPerPage = 100

func repoPath(owner, repo string) string {
	return "repos/" + url.PathEscape(owner) + "/" + url.PathEscape(repo)
}

func environmentPath(owner, repo, name string) string {
	return repoPath(owner, repo) + "/environments/" + url.PathEscape(name)
}

func checkRepo(owner, repo string) error {
	if err := validPathSegment("owner", owner); err != nil {
		return err
	}
	return validPathSegment("repository", repo)
}

// ListEnvironments lists the environments of owner/repo, every page.
func (c *Client) ListEnvironments(ctx context.Context, owner, repo string) ([]Environment, error) {
	return listItems(ctx, c, op{verb: "list environments of", target: "repository " + owner + "/" + repo}, checkRepo(owner, repo),
		repoPath(owner, repo)+"/environments", environmentsPerPage, func(p *gh.EnvResponse) []*gh.Environment { return p.Environments }, environmentOf)
}

// GetEnvironment returns the environment name of owner/repo; IsNotFound(err)
// when there is none.
func (c *Client) GetEnvironment(ctx context.Context, owner, repo, name string) (Environment, error) {
	return c.environment(ctx, http.MethodGet, "get environment", owner, repo, name)
}

// CreateEnvironment creates the environment name in owner/repo, with
// GitHub's defaults (no protection rules). It sends no settings, but GitHub's
// route is "create or update": call it only for an environment that
// ListEnvironments or GetEnvironment did not find.
func (c *Client) CreateEnvironment(ctx context.Context, owner, repo, name string) (Environment, error) {
	return c.environment(ctx, http.MethodPut, "create environment", owner, repo, name)
}

// environment sends method to the environment name's route and returns the
// environment GitHub answers with.
func (c *Client) environment(ctx context.Context, method, verb, owner, repo, name string) (Environment, error) {
	o := op{verb: verb, name: name, target: "repository " + owner + "/" + repo}
	if err := checkEnvironmentOp(owner, repo, name); err != nil {
		return Environment{}, local(o, err)
	}
	var e gh.Environment
	if _, err := c.do(ctx, o, method, environmentPath(owner, repo, name), nil, &e); err != nil {
		return Environment{}, err
	}
	return environmentOf(&e), nil
}

// RepositoryID returns the numeric id of owner/repo, which organization
// secrets with VisibilitySelected name their repositories by.
func (c *Client) RepositoryID(ctx context.Context, owner, repo string) (int64, error) {
	o := op{verb: "look up", target: "repository " + owner + "/" + repo}
	if err := checkRepo(owner, repo); err != nil {
		return 0, local(o, err)
	}
	var r gh.Repository
	if _, err := c.do(ctx, o, http.MethodGet, repoPath(owner, repo), nil, &r); err != nil {
		return 0, err
	}
	return r.GetID(), nil
}

func checkEnvironmentOp(owner, repo, name string) error {
	if err := checkRepo(owner, repo); err != nil {
		return err
	}
	return ValidEnvironmentName(name)
}

func environmentOf(e *gh.Environment) Environment {
	return Environment{ID: e.GetID(), Name: e.GetName(), CreatedAt: timeOf(e.CreatedAt), UpdatedAt: timeOf(e.UpdatedAt)}
}
