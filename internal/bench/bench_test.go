// Package bench measures pgfleet migrate against its floor: a plain pgx loop
// running the same SQL with the same concurrency over the same local fleet,
// measured in the same run, so the ratio means something on a noisy machine.
//
//	make bench
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/migrate"
)

const (
	tenants     = 200
	concurrency = 10
	rounds      = 5 // each figure is the median of this many
)

func BenchmarkMigrate200Tenants(b *testing.B) {
	ctx := context.Background()
	f := newTenantFleet(b, "bench", tenants)
	dbs, files := f.dbs, f.files
	reset := func() {
		forEach(b, dbs, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "DROP TABLE IF EXISTS tasks, projects, users, schema_migrations CASCADE")
			return err
		})
	}
	pgfleet := func() (time.Duration, int64) {
		took, ps := f.pgfleet(b, "migrate", concurrency)
		return took, ps.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
	}
	floor := func() time.Duration {
		start := time.Now()
		forEach(b, dbs, func(conn *pgx.Conn) error { return plainMigrate(ctx, conn, files) })
		return time.Since(start)
	}

	var floorCold, fleetCold, floorWarm, fleetWarm []time.Duration
	var peakKiB int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			// Alternate who goes first, so neither always meets a warmer cache.
			measure := []func(){
				func() { reset(); floorCold = append(floorCold, floor()); floorWarm = append(floorWarm, floor()) },
				func() {
					reset()
					d, rss := pgfleet()
					fleetCold = append(fleetCold, d)
					d, rss2 := pgfleet()
					fleetWarm = append(fleetWarm, d)
					peakKiB = max(peakKiB, rss, rss2)
				},
			}
			if r%2 == 1 {
				measure[0], measure[1] = measure[1], measure[0]
			}
			measure[0]()
			measure[1]()
		}
	}
	// The loop people run today (the Neon guide's): one tenant after
	// another. This one is the same SQL on one connection at a time, so it
	// is faster than the real loop, which starts a migration tool per
	// tenant.
	reset()
	start := time.Now()
	forEachN(b, dbs, 1, func(conn *pgx.Conn) error { return plainMigrate(ctx, conn, files) })
	oneByOne := time.Since(start)
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(tenants) / d.Seconds() }
	fc, pc, fw, pw := median(floorCold), median(fleetCold), median(floorWarm), median(fleetWarm)
	b.ReportMetric(rate(pc), "cold-tenants/s")
	b.ReportMetric(rate(fc), "floor-cold-tenants/s")
	b.ReportMetric(pc.Seconds()/fc.Seconds(), "cold-x-floor")
	b.ReportMetric(rate(pw), "warm-tenants/s")
	b.ReportMetric(rate(fw), "floor-warm-tenants/s")
	b.ReportMetric(pw.Seconds()/fw.Seconds(), "warm-x-floor")
	b.ReportMetric(float64(peakKiB)/1024, "peak-MiB")
	fmt.Printf("\n%d tenants, concurrency %d, %d migrations, median of %d rounds (GOMAXPROCS %d)\n", tenants, concurrency, len(files), rounds, runtime.GOMAXPROCS(0))
	fmt.Printf("  cold:  pgfleet %6.1f tenants/s   floor %6.1f tenants/s   pgfleet takes %.2fx the floor's time (target <= 1.3x)\n", rate(pc), rate(fc), pc.Seconds()/fc.Seconds())
	fmt.Printf("  warm:  pgfleet %6.1f tenants/s   floor %6.1f tenants/s   pgfleet takes %.2fx the floor's time (target <= 1.3x)\n", rate(pw), rate(fw), pw.Seconds()/fw.Seconds())
	fmt.Printf("  one tenant after another (the same SQL, one connection at a time): %.1f tenants/s: pgfleet is %.1fx faster cold\n", rate(oneByOne), oneByOne.Seconds()/pc.Seconds())
	b.ReportMetric(oneByOne.Seconds()/pc.Seconds(), "x-faster-than-one-by-one")
	fmt.Printf("  pgfleet peak RSS: %.1f MiB\n", float64(peakKiB)/1024)
}

type file struct{ version, up string }

func readFiles(b *testing.B, dir string, set *migrate.Set) []file {
	var out []file
	for _, f := range set.Files {
		body, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			b.Fatal(err)
		}
		up := string(body)
		if i := strings.Index(up, "-- migrate:down"); i >= 0 {
			up = up[:i]
		}
		out = append(out, file{f.Version, up})
	}
	return out
}

// plainMigrate is the floor: what any migration tool must do at the least.
func plainMigrate(ctx context.Context, conn *pgx.Conn, files []file) error {
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(128) PRIMARY KEY)"); err != nil {
		return err
	}
	rows, _ := conn.Query(ctx, "SELECT version FROM schema_migrations")
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, v := range applied {
		done[v] = true
	}
	for _, f := range files {
		if done[f.version] {
			continue
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, f.up); err != nil {
			tx.Rollback(ctx)
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", f.version); err != nil {
			tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
