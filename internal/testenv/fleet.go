// Package testenv sets up a local fleet for tests, benchmarks and the demo:
// a throwaway PostgreSQL cluster holding one database per tenant, and a Neon
// API emulator that lists them as projects. Nothing here is used by pgfleet
// itself.
package testenv

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// FleetOptions describe a local fleet.
type FleetOptions struct {
	Tenants int    // how many tenant databases/projects
	Prefix  string // names: <prefix>_0001 (database), <prefix>-0001 (project id)
	// Cluster to create the tenants in; nil starts a new one (closed by Close).
	Cluster *pgcluster.Cluster
	Neon    neonapi.Config // emulator behaviour; APIKey defaults to a random key
}

// Fleet is a running local fleet.
type Fleet struct {
	Cluster *pgcluster.Cluster
	Neon    *neonapi.Server
	APIKey  string
	Tenants []Tenant

	ownCluster bool
}

// Tenant is one tenant as both Postgres and the emulator know it.
type Tenant struct {
	ProjectID string
	Name      string
	DB        pgcluster.TenantDB // credentials: URL and Password
}

// StartFleet creates the tenants and an emulator listing them.
func StartFleet(ctx context.Context, o FleetOptions) (f *Fleet, err error) {
	if o.Prefix == "" {
		o.Prefix = "tenant"
	}
	f = &Fleet{Cluster: o.Cluster}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if f.Cluster == nil {
		c, err := pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			return f, err
		}
		f.Cluster, f.ownCluster = c, true
	}
	dbs, err := f.Cluster.CreateTenants(ctx, o.Prefix, o.Tenants)
	if err != nil {
		return f, fmt.Errorf("create tenants: %w", err)
	}
	cfg := o.Neon
	if cfg.APIKey == "" {
		cfg.APIKey = "neon-test-key-" + strings.ToLower(o.Prefix)
	}
	f.APIKey = cfg.APIKey
	f.Neon = neonapi.New(WithBranchCopies(cfg, f.Cluster))
	for i, db := range dbs {
		id := strings.ReplaceAll(strings.ToLower(o.Prefix), "_", "-") + fmt.Sprintf("-%04d", i+1)
		name := fmt.Sprintf("customer-%04d", i+1)
		f.Neon.AddProject(neonapi.Project{
			ID:   id,
			Name: name,
			Databases: map[string]neonapi.Database{
				"neondb": {URI: db.URL, Role: "neondb_owner"},
			},
		})
		f.Tenants = append(f.Tenants, Tenant{ProjectID: id, Name: name, DB: db})
	}
	return f, nil
}

// Close stops the emulator, and the cluster if the fleet started it.
func (f *Fleet) Close() {
	if f.Neon != nil {
		f.Neon.Close()
	}
	if f.ownCluster && f.Cluster != nil {
		f.Cluster.Stop()
	}
}

// Passwords lists every tenant password, for leak scans.
func (f *Fleet) Passwords() []string {
	out := make([]string, len(f.Tenants))
	for i, t := range f.Tenants {
		out[i] = t.DB.Password
	}
	return out
}
