// Command demo shows pgfleet at work on a fleet it sets up itself: a local
// PostgreSQL cluster with 24 tenant databases, a Neon API emulator listing
// them as projects, and the real pgfleet binary migrating them, then running
// again with nothing to do, then applying one new migration with one tenant
// that fails; then backing the fleet up to a local folder (with a restore
// drill of three tenants into a scratch database) and restoring one tenant
// into a fresh database. Run it from the repository root: make demo.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/testenv"
)

func main() {
	if err := demo(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func demo() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	work, err := os.MkdirTemp("", "pgfleet-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	step("Building pgfleet")
	bin := filepath.Join(work, "pgfleet")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build (run the demo from the repository root): %w", err)
	}

	step("Starting a local fleet: PostgreSQL with 24 tenant databases, and a Neon API emulator")
	fleet, err := testenv.StartFleet(ctx, testenv.FleetOptions{Tenants: 24, Prefix: "demo"})
	if err != nil {
		return err
	}
	defer fleet.Close()
	fmt.Printf("  Neon API emulator at %s, PostgreSQL on 127.0.0.1:%d\n", fleet.Neon.URL(), fleet.Cluster.Port())

	migrations := filepath.Join(work, "migrations")
	if err := os.CopyFS(migrations, os.DirFS("testdata/migrations")); err != nil {
		return err
	}
	// pgfleet runs the binary as a user would on a terminal, with the
	// summary GitHub would show printed after it.
	pgfleet := func(title string, args ...string) error {
		step(title)
		summary := filepath.Join(work, "summary.md")
		os.Remove(summary)
		args = append(args, "--neon-api-url", fleet.Neon.URL(), "--report-file", filepath.Join(work, "report.json"))
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "NEON_API_KEY="+fleet.APIKey, "GITHUB_STEP_SUMMARY="+summary)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		err := cmd.Run()
		fmt.Printf("\n  exit status: %d\n", cmd.ProcessState.ExitCode())
		if b, rerr := os.ReadFile(summary); rerr == nil {
			fmt.Println("\n  The job summary GitHub would show (Markdown):")
			fmt.Println(indent(string(b))) // all of it, as GitHub would show it
		}
		if _, ok := err.(*exec.ExitError); ok {
			return nil // a failing tenant is part of the demo
		}
		return err
	}
	run := func(title string) error { return pgfleet(title, "migrate", "--migrations-dir", migrations) }

	if err := run("1. pgfleet migrate: every tenant from nothing to the latest schema"); err != nil {
		return err
	}
	if err := run("2. The same run again: nothing to do"); err != nil {
		return err
	}

	// One tenant has a table the next migration also wants to create.
	conn, err := pgx.Connect(ctx, fleet.Tenants[5].DB.URL)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE TABLE labels (x int)")
	conn.Close(ctx)
	if err != nil {
		return err
	}
	os.WriteFile(filepath.Join(migrations, "29990101000000_add_labels.sql"), []byte(
		"-- migrate:up\nCREATE TABLE labels (id bigint PRIMARY KEY, name text NOT NULL);\n-- migrate:down\nDROP TABLE labels;\n"), 0o644)
	if err := run("3. A new migration, and one tenant (" + fleet.Tenants[5].Name + ") where it fails: that tenant stays at its old version, the rest move on"); err != nil {
		return err
	}

	// Some data in every tenant, so the backups hold something to check.
	for i, t := range fleet.Tenants {
		conn, err := pgx.Connect(ctx, t.DB.URL)
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, fmt.Sprintf(`
INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, %d) g;
INSERT INTO projects (owner_id, name) SELECT id, 'Project of ' || name FROM users;
INSERT INTO tasks (project_id, title, status) SELECT p.id, 'Task ' || g, (ARRAY['todo','doing','done'])[1 + g %% 3] FROM projects p, generate_series(1, 20) g;`, 50+i*10))
		conn.Close(ctx)
		if err != nil {
			return err
		}
	}
	backups := filepath.Join(work, "backups")
	// A scratch database for the restore drill: three of the new backups,
	// chosen at random, are restored into it and checked. Its URL, like any
	// with a password, comes from the environment.
	scratch, err := fleet.Cluster.CreateTenant(ctx, "demo_drill_scratch")
	if err != nil {
		return err
	}
	os.Setenv("PGFLEET_DRILL_TARGET_URL", scratch.URL)
	if err := pgfleet("4. pgfleet backup: every tenant dumped (zstd, in one stream) into a local folder, each with a checked manifest; then a restore drill of 3 of them",
		"backup", "--destination", "file://"+backups, "--concurrency", "8", "--drill-count", "3"); err != nil {
		return err
	}
	os.Unsetenv("PGFLEET_DRILL_TARGET_URL")
	t := fleet.Tenants[2]
	fmt.Printf("\n  What one tenant's folder holds (%s):\n", t.Name)
	filepath.WalkDir(backups, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, t.ProjectID) {
			fi, _ := d.Info()
			rel, _ := filepath.Rel(backups, p)
			fmt.Printf("    %-60s %8d bytes\n", rel, fi.Size())
			if strings.HasSuffix(p, ".manifest.json") {
				b, _ := os.ReadFile(p)
				fmt.Println(indent(indent(head(string(b), 24))))
			}
		}
		return nil
	})

	target, err := fleet.Cluster.CreateTenant(ctx, "demo_restored")
	if err != nil {
		return err
	}
	// The target's URL holds a password: from the environment, not the
	// command line, where ps would show it.
	os.Setenv("PGFLEET_RESTORE_TARGET_URL", target.URL)
	if err := pgfleet("5. pgfleet restore: "+t.Name+"'s latest backup into a fresh database, in one transaction, every table's rows compared with the manifest",
		"restore", "--destination", "file://"+backups, "--restore-project", t.Name); err != nil {
		return err
	}
	step("Done. The fleet is torn down now.")
	return nil
}

func step(s string) { fmt.Printf("\n=== %s (%s)\n\n", s, time.Now().Format("15:04:05")) }

func head(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("… (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
