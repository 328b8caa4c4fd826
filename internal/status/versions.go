package status

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/migrations"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
)

// readTenant reads one tenant's applied versions and schema on one
// connection, in one read-only transaction (rolled back): status never
// changes a tenant, and Postgres refuses any write the transaction might
// attempt.
func (j *Job) readTenant(ctx context.Context, url string, d *Detail) error {
	conn, err := pgconnect.Connect(ctx, url, pgconnect.Options{AppName: "pgfleet status"})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin a read-only transaction: %w", err)
	}
	defer tx.Rollback(context.Background())
	applied, err := j.applied(ctx, tx)
	if err != nil {
		return err
	}
	j.compareVersions(applied, d)
	if j.o.Drift {
		objs, err := readCatalog(ctx, tx)
		if err != nil {
			return err
		}
		d.objects = objs
		d.Fingerprint = fingerprint(objs)
	}
	return nil
}

// applied reads the versions in dbmate's table (none when it is missing).
func (j *Job) applied(ctx context.Context, tx pgx.Tx) (map[string]bool, error) {
	ident := pgx.Identifier(strings.Split(j.o.Table, ".")).Sanitize()
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ident).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for migrations table %s: %w", j.o.Table, err)
	}
	out := map[string]bool{}
	if !exists {
		return out, nil
	}
	rows, err := tx.Query(ctx, "SELECT version::text FROM "+ident)
	if err != nil {
		return nil, fmt.Errorf("read migrations table %s: %w", j.o.Table, err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read migrations table %s: %w", j.o.Table, err)
	}
	for _, v := range versions {
		out[v] = true
	}
	return out, nil
}

// compareVersions fills the version fields of d from what is applied.
func (j *Job) compareVersions(applied map[string]bool, d *Detail) {
	d.Version = migrations.Highest(applied)
	d.Pending, d.Gaps, d.Unknown = []string{}, []string{}, []string{}
	for _, f := range j.o.Set.Pending(applied) {
		d.Pending = append(d.Pending, f.Name)
		// A pending file below the applied version is a gap: it was
		// merged after a later one ran, and dbmate applies it out of order.
		if migrations.VersionLess(f.Version, d.Version) {
			d.Gaps = append(d.Gaps, f.Name)
		}
	}
	for v := range applied {
		if !j.o.Set.Has(v) {
			d.Unknown = append(d.Unknown, v)
		}
	}
	slices.SortFunc(d.Unknown, compareVersions)
}

func compareVersions(a, b string) int {
	switch {
	case migrations.VersionLess(a, b):
		return -1
	case migrations.VersionLess(b, a):
		return 1
	}
	return 0
}

func sortVersions(vs []string) { slices.SortFunc(vs, compareVersions) }
