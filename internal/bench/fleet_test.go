package bench

// What the benchmarks share: building pgfleet, a fleet of tenant databases,
// running pgfleet over it, and running SQL on every tenant for the floors.

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
	"golang.org/x/sync/errgroup"

	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// tenantFleet is what the database benchmarks start from: a pgfleet
// binary, n fresh tenant databases on a cluster of the benchmark's own, and
// the repository's testdata migrations, read for the floor.
type tenantFleet struct {
	bin, migrations string
	files           []file
	dbs             []pgcluster.TenantDB
}

func newTenantFleet(b *testing.B, prefix string, n int) tenantFleet {
	root, bin := buildFromRoot(b)
	f := tenantFleet{bin: bin, migrations: filepath.Join(root, "testdata", "migrations")}
	set, err := migrate.Load(f.migrations)
	if err != nil {
		b.Fatal(err)
	}
	f.files = readFiles(b, f.migrations, set)
	f.dbs, err = pgcluster.StartForTest(b).CreateTenants(context.Background(), prefix, n)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// pgfleet runs `pgfleet <mode>` over the fleet's databases with its
// migrations at concurrency conc.
func (f tenantFleet) pgfleet(b *testing.B, mode string, conc int) (time.Duration, *os.ProcessState) {
	took, _, ps := runPgfleet(b, f.bin, []string{"INPUT_DATABASE-URLS=" + databaseURLs(f.dbs)},
		mode, "--migrations-dir", f.migrations, "--concurrency", fmt.Sprint(conc), "--report-file", filepath.Join(b.TempDir(), "r.json"))
	return took, ps
}

// databaseURLs is the database-urls input naming dbs.
func databaseURLs(dbs []pgcluster.TenantDB) string {
	var list strings.Builder
	for _, db := range dbs {
		fmt.Fprintf(&list, "%s=%s\n", db.Name, db.URL)
	}
	return list.String()
}

// runPgfleet runs bin with args, env added to this process's environment,
// and returns how long it took, its output and its process state; a run
// that fails fails the benchmark, with the output's last lines.
func runPgfleet(b *testing.B, bin string, env []string, args ...string) (time.Duration, []byte, *os.ProcessState) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("pgfleet: %v\n%s", err, tailLines(string(out), 20))
	}
	return took, out, cmd.ProcessState
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// forEach connects to every tenant, concurrency at a time, and runs fn.
func forEach(b *testing.B, dbs []pgcluster.TenantDB, fn func(*pgx.Conn) error) {
	forEachN(b, dbs, concurrency, fn)
}

// forEachN runs fn on every tenant, n at a time, each on a connection of
// its own.
func forEachN(b *testing.B, dbs []pgcluster.TenantDB, n int, fn func(*pgx.Conn) error) {
	ctx := context.Background()
	var g errgroup.Group
	g.SetLimit(n)
	for _, db := range dbs {
		g.Go(func() error {
			conn, err := pgx.Connect(ctx, db.URL)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			return fn(conn)
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}

// buildPgfleet builds the binary every benchmark runs, into a temp folder.
func buildPgfleet(b *testing.B, root string) string {
	bin := filepath.Join(b.TempDir(), "pgfleet")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// buildFromRoot finds the repository root and builds pgfleet from it.
func buildFromRoot(b *testing.B) (root, bin string) {
	root = repoRoot(b)
	return root, buildPgfleet(b, root)
}

func repoRoot(b *testing.B) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			b.Fatal("go.mod not found")
		}
		dir = parent
	}
}
