package testenv

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// A Neon branch is a copy-on-write copy of its parent's data. Here a
// branch's database is a real copy of the tenant's, made with CREATE
// DATABASE ... TEMPLATE: the server copies the files, and no session is
// ever opened on the tenant's database. That matters: a rehearsal test
// proves production was never connected to by its session count
// (pg_stat_database.sessions), which a pg_dump | psql copy would raise
// itself. Postgres refuses a template that has sessions; the only ones a
// test leaves are its own idle connections, so those are ended and the
// copy is tried again.

// WithBranchCopies returns cfg with branches made through the API given a
// real copy of their tenant's database on cluster, unless cfg has a copier
// of its own.
func WithBranchCopies(cfg neonapi.Config, cluster *pgcluster.Cluster) neonapi.Config {
	if cfg.Branching.CopyDatabase == nil {
		cfg.Branching.CopyDatabase, cfg.Branching.DropDatabase = branchCopier(cluster)
	}
	return cfg
}

// copyTries bounds the retries of a copy whose template had sessions.
const copyTries = 5

// branchCopier returns the emulator's CopyDatabase and DropDatabase for
// cluster.
func branchCopier(c *pgcluster.Cluster) (copyDB func(context.Context, neonapi.Database, string, string) (neonapi.Database, error), dropDB func(context.Context, neonapi.Database) error) {
	copyDB = func(ctx context.Context, parent neonapi.Database, branchID, databaseName string) (neonapi.Database, error) {
		u, err := url.Parse(parent.URI)
		if err != nil {
			return neonapi.Database{}, err
		}
		template := strings.TrimPrefix(u.Path, "/")
		// One copy per (branch, database): a hash of both keeps the name
		// unique and within Postgres's 63 bytes.
		h := fnv.New32a()
		h.Write([]byte(branchID + "/" + databaseName))
		name := fmt.Sprintf("%s_br%08x", template[:min(len(template), 50)], h.Sum32())
		owner := parent.Role
		if owner == "" {
			owner = u.User.Username()
		}
		conn, err := pgx.Connect(ctx, c.AdminURL("postgres"))
		if err != nil {
			return neonapi.Database{}, err
		}
		defer conn.Close(context.Background())
		create := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s OWNER %s STRATEGY FILE_COPY",
			pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize(), pgx.Identifier{u.User.Username()}.Sanitize())
		for try := 1; ; try++ {
			_, err = conn.Exec(ctx, create)
			var pgErr *pgconn.PgError
			if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || try >= copyTries {
				break
			}
			// "source database is being accessed by other users".
			if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND state = 'idle'", template); err != nil {
				return neonapi.Database{}, err
			}
			time.Sleep(time.Duration(try) * 50 * time.Millisecond)
		}
		if err != nil {
			return neonapi.Database{}, fmt.Errorf("copy %s: %w", template, err)
		}
		if _, err := conn.Exec(ctx, "REVOKE CONNECT, TEMPORARY ON DATABASE "+pgx.Identifier{name}.Sanitize()+" FROM PUBLIC"); err != nil {
			return neonapi.Database{}, err
		}
		u.Path = "/" + name
		return neonapi.Database{URI: u.String(), Role: owner}, nil
	}
	dropDB = func(ctx context.Context, copy neonapi.Database) error {
		u, err := url.Parse(copy.URI)
		if err != nil {
			return err
		}
		conn, err := pgx.Connect(ctx, c.AdminURL("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" WITH (FORCE)")
		return err
	}
	return copyDB, dropDB
}

// Sessions returns, for each tenant database, how many sessions have ever
// been opened on it (pg_stat_database.sessions). A test reads it before and
// after a run: an unchanged count proves the run never connected. It first
// waits (at most 10 s) for the sessions still open on those databases to
// end, since a backend reports its session when it exits.
func (f *Fleet) Sessions(ctx context.Context) (map[string]int64, error) {
	conn, err := pgx.Connect(ctx, f.Cluster.AdminURL("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	names := make([]string, len(f.Tenants))
	for i, t := range f.Tenants {
		names[i] = t.DB.Name
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var open int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)", names).Scan(&open); err != nil {
			return nil, err
		}
		if open == 0 {
			break
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT datname, sessions FROM pg_stat_database WHERE datname = ANY($1)", names)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var s int64
		if err := rows.Scan(&n, &s); err != nil {
			return nil, err
		}
		out[n] = s
	}
	return out, rows.Err()
}
