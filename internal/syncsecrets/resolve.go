package syncsecrets

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// The fleet: its tenants and their connection strings.

// listFleet lists the selected tenants.
func (p *planner) listFleet(ctx context.Context) ([]*item, error) {
	var items []*item
	err := p.env.Source(p.o.pooled).Tenants(ctx, func(t tenant.Tenant) bool {
		items = append(items, &item{t: t})
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return items, nil
}

// resolve fetches every connection string. A tenant whose connection
// string cannot be had stays in the plan (its name is still taken) and
// fails when the runner reaches it.
func (p *planner) resolve(ctx context.Context, items []*item) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, min(p.env.Config.Concurrency, len(items), 50)))
	for _, it := range items {
		if it.t.Resolve == nil {
			continue
		}
		g.Go(func() error {
			u, err := it.t.Resolve(gctx)
			it.t.Resolve = nil
			if err != nil {
				it.err = fmt.Errorf("resolve connection string: %w", err)
				return nil // this tenant fails; the others go on
			}
			it.t.URL = u
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, it := range items {
		if it.t.URL != "" {
			p.env.Secret(tenant.Password(it.t.URL))
			p.env.Secret(it.t.URL) // the secret's whole value
		}
		if it.err == nil && it.t.URL == "" {
			it.err = errors.New("no connection string")
		}
		if it.err == nil && len(it.t.URL) > github.MaxSecretValueSize {
			it.err = fmt.Errorf("the connection string is %d bytes, more than the %d a GitHub secret holds", len(it.t.URL), github.MaxSecretValueSize)
		}
	}
	return nil
}
