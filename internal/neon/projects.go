package neon

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// maxProjectsLimit is the largest page GET /projects serves (spec: 1..400).
const maxProjectsLimit = 400

// branchesPageSize is the page asked of GET /projects/{id}/branches (spec
// allows up to 10000). A search by name almost always fits in one page.
const branchesPageSize = 100

// Project is what pgfleet uses of Neon's ProjectListItem.
type Project struct {
	ID         string
	Name       string
	OrgID      string // "" for a personal project
	RegionID   string // e.g. "aws-us-east-2"
	PlatformID string // e.g. "aws"
	PgVersion  int    // server major version: pg_dump must be at least this
	ProxyHost  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// SyntheticStorageSize is Neon's measure of the project's storage
	// (bytes): where migrations run longest.
	SyntheticStorageSize int64
}

type projectJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	OrgID      string `json:"org_id"`
	RegionID   string `json:"region_id"`
	PlatformID string `json:"platform_id"`
	PgVersion  int    `json:"pg_version"`
	ProxyHost  string `json:"proxy_host"`
	CreatedAt  string `json:"created_at"`
	UpdatedAt  string `json:"updated_at"`

	SyntheticStorageSize int64 `json:"synthetic_storage_size"`
}

// project converts; timestamps are informational, so one Neon formats
// unexpectedly becomes the zero time rather than failing the whole page.
func (p projectJSON) project() Project {
	created, _ := time.Parse(time.RFC3339, p.CreatedAt)
	updated, _ := time.Parse(time.RFC3339, p.UpdatedAt)
	return Project{
		ID:         p.ID,
		Name:       p.Name,
		OrgID:      p.OrgID,
		RegionID:   p.RegionID,
		PlatformID: p.PlatformID,
		PgVersion:  p.PgVersion,
		ProxyHost:  p.ProxyHost,
		CreatedAt:  created,
		UpdatedAt:  updated,

		SyntheticStorageSize: p.SyntheticStorageSize,
	}
}

// ListProjects lists every project the key (and Options.OrgID) can see,
// calling fn with each page as soon as it arrives so the caller can start on
// those tenants while later pages are fetched. fn is not called for an empty
// page; an error from fn stops the listing and is returned as is.
//
// Neon returns a cursor even on the last page, so the end is a page shorter
// than the limit (or empty), not a missing cursor. Projects Neon could not
// fetch in time come back as unavailable_project_ids; they are fetched one
// by one with GET /projects/{project_id} and delivered in the same page, so
// none is silently dropped.
func (c *Client) ListProjects(ctx context.Context, fn func(page []Project) error) error {
	cursor := ""
	for n := 1; ; n++ {
		page, next, full, err := c.projectsPage(ctx, cursor)
		if err != nil {
			return fmt.Errorf("list projects (page %d): %w", n, err)
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if !full || next == "" {
			return nil
		}
		if next == cursor {
			return fmt.Errorf("list projects (page %d): Neon returned the same cursor again; stopping rather than looping", n)
		}
		cursor = next
	}
}

// projectsPage fetches one page; full reports whether it held a whole
// limit's worth of ids (so another page may follow).
func (c *Client) projectsPage(ctx context.Context, cursor string) (page []Project, next string, full bool, err error) {
	q := url.Values{"limit": {strconv.Itoa(c.pageSize)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if c.orgID != "" {
		q.Set("org_id", c.orgID)
	}
	var resp struct {
		Projects    []projectJSON `json:"projects"`
		Unavailable []string      `json:"unavailable_project_ids"`
		Pagination  struct {
			Cursor string `json:"cursor"`
		} `json:"pagination"`
	}
	err = c.get(ctx, request{
		route:    "/projects",
		path:     "/projects",
		query:    q,
		notFound: "the projects endpoint was not found; is the API base URL right (it ends in /api/v2)?",
	}, &resp)
	if err != nil {
		return nil, "", false, err
	}
	for _, p := range resp.Projects {
		page = append(page, p.project())
	}
	for _, id := range resp.Unavailable {
		p, err := c.Project(ctx, id)
		if err != nil {
			return nil, "", false, fmt.Errorf("project %s was listed as unavailable and could not be fetched: %w", id, err)
		}
		page = append(page, p)
	}
	ids := len(resp.Projects) + len(resp.Unavailable)
	return page, resp.Pagination.Cursor, ids >= c.pageSize, nil
}

// Project fetches one project by id (GET /projects/{project_id}).
func (c *Client) Project(ctx context.Context, projectID string) (Project, error) {
	var resp struct {
		Project projectJSON `json:"project"`
	}
	err := c.get(ctx, request{
		route:    "/projects/{project_id}",
		path:     "/projects/" + url.PathEscape(projectID),
		notFound: fmt.Sprintf("project %s not found (or the API key cannot see it)", projectID),
	}, &resp)
	if err != nil {
		return Project{}, err
	}
	return resp.Project.project(), nil
}

// ConnectionURI returns the connection URI of database as role on a branch
// of a project (GET /projects/{project_id}/connection_uri). branchID "" means
// the project's default branch. Use pooled=false for migrations and pg_dump:
// a pooled (-pooler) host runs PgBouncer in transaction mode, which breaks
// session-level features both rely on.
//
// The URI holds the role's password: it is a credential.
func (c *Client) ConnectionURI(ctx context.Context, projectID, branchID, database, role string, pooled bool) (string, error) {
	if database == "" || role == "" {
		return "", errors.New("neon: connection URI needs a database and a role name")
	}
	q := url.Values{
		"database_name": {database},
		"role_name":     {role},
		"pooled":        {strconv.FormatBool(pooled)},
	}
	branch := "the default branch"
	if branchID != "" {
		q.Set("branch_id", branchID)
		branch = "branch " + branchID
	}
	var resp struct {
		URI string `json:"uri"`
	}
	err := c.get(ctx, request{
		route: "/projects/{project_id}/connection_uri",
		path:  "/projects/" + url.PathEscape(projectID) + "/connection_uri",
		query: q,
		notFound: fmt.Sprintf("project %s, %s, database %q or role %q not found (check the database and role inputs)",
			projectID, branch, database, role),
	}, &resp)
	if err != nil {
		return "", err
	}
	if resp.URI == "" {
		return "", fmt.Errorf("neon: project %s answered an empty connection URI", projectID)
	}
	return resp.URI, nil
}

// ErrBranchNotFound is wrapped by BranchID when no branch has the given name
// or id.
var ErrBranchNotFound = errors.New("branch not found")

// BranchID resolves a branch name or id to the branch id. Neon's search
// matches names and ids by substring, so the answer is filtered for an exact
// id match first (a value like "br-small-term-683261"), then an exact name.
func (c *Client) BranchID(ctx context.Context, projectID, nameOrID string) (string, error) {
	if nameOrID == "" {
		return "", errors.New("neon: empty branch name")
	}
	byName := ""
	cursor := ""
	for n := 1; ; n++ {
		q := url.Values{"search": {nameOrID}, "limit": {strconv.Itoa(c.branchPageSize)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var resp struct {
			Branches []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"branches"`
			Pagination struct {
				Next string `json:"next"`
			} `json:"pagination"`
		}
		err := c.get(ctx, request{
			route:    "/projects/{project_id}/branches",
			path:     "/projects/" + url.PathEscape(projectID) + "/branches",
			query:    q,
			notFound: fmt.Sprintf("project %s not found (or the API key cannot see it)", projectID),
		}, &resp)
		if err != nil {
			return "", fmt.Errorf("find branch %q of project %s (page %d): %w", nameOrID, projectID, n, err)
		}
		for _, b := range resp.Branches {
			if b.ID == nameOrID {
				return b.ID, nil
			}
			if b.Name == nameOrID && byName == "" {
				byName = b.ID
			}
		}
		next := resp.Pagination.Next
		if len(resp.Branches) < c.branchPageSize || next == "" || next == cursor {
			break
		}
		cursor = next
	}
	if byName != "" {
		return byName, nil
	}
	return "", fmt.Errorf("project %s: %w: %q", projectID, ErrBranchNotFound, nameOrID)
}
