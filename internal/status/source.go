package status

import (
	"context"

	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

var _ mode.SourceOverride = (*Job)(nil)

// Source is the run's tenants. When no database is read (backups only),
// a tenant's connection string is never needed: the source's deferred
// lookup (one Neon API call per tenant) is dropped, so an hourly backup
// check over a thousand tenants costs the listing alone.
func (j *Job) Source() tenant.Source {
	if j.o.Set != nil {
		return j.source
	}
	return withoutURLs{j.source}
}

type withoutURLs struct{ tenant.Source }

func (s withoutURLs) Tenants(ctx context.Context, yield func(tenant.Tenant) bool) error {
	return s.Source.Tenants(ctx, func(t tenant.Tenant) bool {
		t.Resolve = nil
		return yield(t)
	})
}
