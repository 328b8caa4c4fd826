// Package source implements tenant.Source for the two places tenants come
// from: the Neon API (one project per tenant) and an explicit list of URLs
// (a tenant.Static).
package source

import (
	"context"
	"errors"

	"github.com/pgfleet/pgfleet/internal/neon"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Neon lists a Neon account's projects page by page and yields each selected
// project as soon as its page arrives. Connection strings are resolved
// lazily (tenant.Resolve), through the client's shared rate limiter, only for
// tenants that actually start.
type Neon struct {
	Client   *neon.Client
	Database string // database_name, e.g. neondb
	Role     string // role_name, e.g. neondb_owner
	Branch   string // branch name or id; "" = the project's default branch
	// Pooled asks for the pooled (-pooler) connection string, which
	// applications want; migrations and pg_dump need the direct one.
	Pooled   bool
	Selector tenant.Selector
	// OnSecret is told every password as soon as it is known, so it can be
	// masked before anything could print it.
	OnSecret func(string)
}

var errStopListing = errors.New("stop listing")

// Tenants implements tenant.Source.
func (s *Neon) Tenants(ctx context.Context, yield func(tenant.Tenant) bool) error {
	// A project listed twice (a listing that shifts while it is paged) must
	// still be worked on once.
	seen := map[string]bool{}
	err := s.Client.ListProjects(ctx, func(page []neon.Project) error {
		for _, p := range page {
			if err := ctx.Err(); err != nil {
				return err // a page holds up to 400 projects: stop between them
			}
			if seen[p.ID] || !s.Selector.Selects(p.ID, p.Name) {
				continue
			}
			seen[p.ID] = true
			if !yield(tenant.Tenant{ID: p.ID, Name: p.Name, Resolve: s.resolver(p.ID), StorageBytes: p.SyntheticStorageSize}) {
				return errStopListing
			}
		}
		return nil
	})
	if errors.Is(err, errStopListing) {
		return ctx.Err()
	}
	return err
}

func (s *Neon) resolver(projectID string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		branchID := ""
		if s.Branch != "" {
			id, err := s.Client.BranchID(ctx, projectID, s.Branch)
			if err != nil {
				return "", err
			}
			branchID = id
		}
		// Unpooled unless asked: migrations take session-level advisory
		// locks and pg_dump breaks through the pooler.
		uri, err := s.Client.ConnectionURI(ctx, projectID, branchID, s.Database, s.Role, s.Pooled)
		if err != nil {
			return "", err
		}
		if pw := tenant.Password(uri); pw != "" && s.OnSecret != nil {
			s.OnSecret(pw)
		}
		return uri, nil
	}
}

// Entry is one explicitly listed database.
type Entry struct {
	Name string
	URL  string // credential
}

// List is the given databases that the selector picks, in the order given.
func List(entries []Entry, sel tenant.Selector) tenant.Static {
	var out tenant.Static
	for _, e := range entries {
		if sel.Selects(e.Name, e.Name) {
			out = append(out, tenant.Tenant{ID: e.Name, Name: e.Name, URL: e.URL})
		}
	}
	return out
}
