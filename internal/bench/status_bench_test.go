package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/status"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// BenchmarkStatus500Tenants: status's versions and drift over 500 tenants
// at concurrency 16, against the floor: a bare pgx loop that connects and
// runs the same read-only transaction (the migrations table and the one
// catalog query). Target: within 1.3x.
func BenchmarkStatus500Tenants(b *testing.B) {
	const n, conc = 500, 16
	ctx := context.Background()
	root := repoRoot(b)
	bin := buildPgfleet(b, root)
	migrations := filepath.Join(root, "testdata", "migrations")
	set, err := migrate.Load(migrations)
	if err != nil {
		b.Fatal(err)
	}
	files := readFiles(b, migrations, set)
	cluster := pgcluster.StartForTest(b)
	dbs, err := cluster.CreateTenants(ctx, "stat", n)
	if err != nil {
		b.Fatal(err)
	}
	forEachN(b, dbs, conc, func(conn *pgx.Conn) error { return plainMigrate(ctx, conn, files) })
	var list strings.Builder
	for _, db := range dbs {
		fmt.Fprintf(&list, "%s=%s\n", db.Name, db.URL)
	}
	pgfleet := func() time.Duration {
		cmd := exec.Command(bin, "status", "--migrations-dir", migrations, "--concurrency", fmt.Sprint(conc),
			"--report-file", filepath.Join(b.TempDir(), "r.json"))
		cmd.Env = append(os.Environ(), "INPUT_DATABASE-URLS="+list.String())
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pgfleet: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	query := status.CatalogQuery()
	floor := func() time.Duration {
		start := time.Now()
		forEachN(b, dbs, conc, func(conn *pgx.Conn) error {
			tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			rows, _ := tx.Query(ctx, "SELECT version::text FROM schema_migrations")
			if _, err := pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
			rows, _ = tx.Query(ctx, query)
			_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
			return err
		})
		return time.Since(start)
	}
	var fl, pf []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < 3; r++ {
			if r%2 == 0 {
				fl = append(fl, floor())
				pf = append(pf, pgfleet())
			} else {
				pf = append(pf, pgfleet())
				fl = append(fl, floor())
			}
		}
	}
	b.StopTimer()
	f, p := median(fl), median(pf)
	b.ReportMetric(float64(n)/p.Seconds(), "tenants/s")
	b.ReportMetric(p.Seconds()/f.Seconds(), "x-floor")
	fmt.Printf("\nstatus, %d tenants, concurrency %d: pgfleet %s, floor %s: %.2fx the floor's time (target <= 1.3x)\n", n, conc, p.Round(time.Millisecond), f.Round(time.Millisecond), p.Seconds()/f.Seconds())
}
