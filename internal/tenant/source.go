package tenant

import "context"

// Source finds tenants. Implementations stream: they call yield as soon as a
// tenant is known, so work can start before the whole fleet has been listed.
type Source interface {
	// Tenants calls yield for each selected tenant until the source is
	// exhausted, yield returns false, or ctx is done.
	Tenants(ctx context.Context, yield func(Tenant) bool) error
}

// Static is a fixed list of tenants, yielded in order: an explicit
// database-urls list, or the tenants a mode has already checked.
type Static []Tenant

// Tenants implements Source. It stops when yield returns false or ctx is
// done, and then returns ctx's error (nil when the consumer simply stopped).
func (s Static) Tenants(ctx context.Context, yield func(Tenant) bool) error {
	for _, t := range s {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !yield(t) {
			return ctx.Err()
		}
	}
	return nil
}

// SourceFunc lets an ordinary function be a Source, as http.HandlerFunc
// lets one be a handler.
type SourceFunc func(ctx context.Context, yield func(Tenant) bool) error

// Tenants implements Source by calling f.
func (f SourceFunc) Tenants(ctx context.Context, yield func(Tenant) bool) error {
	return f(ctx, yield)
}
