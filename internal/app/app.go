// Package app is pgfleet's entry point: inputs in, a fleet run, and the
// summary, outputs, JSON report and exit status out. main.go only wires it to
// the process (arguments, environment, signals).
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pgfleet/pgfleet/internal/config"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/neon"
	"github.com/pgfleet/pgfleet/internal/redact"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/source"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Exit statuses.
const (
	ExitOK           = 0 // every selected tenant succeeded or was up to date
	ExitFailed       = 1 // a tenant failed, listing failed, or the run was cancelled
	ExitInvalidInput = 2 // bad input; nothing was touched
)

// Version is set at build time.
var Version = "dev"

// Main runs pgfleet. ctx is cancelled on SIGINT/SIGTERM.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	inActions := getenv("GITHUB_ACTIONS") == "true"
	raw := &lockedWriter{w: stdout}
	red := redact.New(func(secret string) {
		if inActions {
			// The runner must learn each secret before any line could carry it.
			fmt.Fprintf(raw, "::add-mask::%s\n", secret)
		}
	})
	out := &console{w: red.Writer(raw), actions: inActions}
	errOut := red.Writer(&lockedWriter{w: stderr})

	for _, a := range args {
		switch a {
		case "-h", "--help", "help":
			fmt.Fprint(stdout, usage)
			return ExitOK
		case "--version", "version":
			fmt.Fprintf(stdout, "pgfleet %s\n", Version)
			return ExitOK
		}
	}
	flags, err := parseArgs(args)
	if err != nil {
		out.invalid(errOut, err)
		return ExitInvalidInput
	}
	get := lookup(flags, getenv)

	// Register every credential before anything is printed, even before
	// validation: an error message could otherwise carry one.
	red.Add(get("neon-api-key"))
	for _, line := range strings.Split(get("database-urls"), "\n") {
		// Either a bare URL or name=URL: register whichever parses.
		line = strings.TrimSpace(line)
		red.Add(tenant.Password(line))
		if _, u, ok := strings.Cut(line, "="); ok {
			red.Add(tenant.Password(strings.TrimSpace(u)))
		}
	}

	cfg, err := config.Load(get)
	if err != nil {
		out.invalid(errOut, err)
		return ExitInvalidInput
	}
	set, err := migrate.Load(cfg.Migrate.Dir)
	if err != nil {
		out.invalid(errOut, fmt.Errorf("migrations-dir: %w", err))
		return ExitInvalidInput
	}

	src, where := buildSource(cfg, red, out.apiRetry)
	reportPath := cfg.ReportFile
	if reportPath == "" {
		reportPath = defaultReportPath(getenv, cfg.Mode)
	}

	what := fmt.Sprintf("%d migration files from %s (latest %s)", len(set.Files), cfg.Migrate.Dir, set.Latest())
	if cfg.Migrate.DryRun {
		what += ", dry run: nothing will be changed"
	}
	fmt.Fprintf(out.w, "pgfleet %s %s: %s; tenants from %s; concurrency %d, tenant-timeout %s\n",
		Version, cfg.Mode, what, where, cfg.Concurrency, cfg.TenantTimeout)

	migrator := migrate.New(set, migrate.Options{
		Table:       cfg.Migrate.Table,
		LockTimeout: cfg.Migrate.LockTimeout,
		DryRun:      cfg.Migrate.DryRun,
	})
	started := time.Now()
	outcome := fleet.Run(ctx, fleet.Options{
		Concurrency:   cfg.Concurrency,
		TenantTimeout: cfg.TenantTimeout,
		MaxFailures:   cfg.MaxFailures,
		CanaryCount:   cfg.CanaryCount,
		CanaryGlobs:   cfg.CanaryGlobs,
		Progress:      out.w,
		ProgressEvery: progressEvery(getenv),
		OnDone:        out.tenantDone,
	}, src, migrator.Migrate)

	run := report.Run{
		Mode:       cfg.Mode,
		Started:    started,
		Duration:   time.Since(started),
		Results:    outcome.Results,
		DryRun:     cfg.Migrate.DryRun,
		Cancelled:  outcome.Cancelled,
		Stopped:    outcome.Stopped,
		SourceErr:  outcome.SourceErr,
		ReportFile: reportPath,
		Scrub:      red.Scrub,
	}
	if outcome.SourceErr != nil {
		out.errorf("listing tenants failed: %v", outcome.SourceErr)
	} else if len(outcome.Results) == 0 {
		out.warnf("no tenants selected: check projects, exclude-projects and shard (and, for Neon, that the key sees the projects: neon-org-id)")
	}
	if err := writeReport(reportPath, run); err != nil {
		out.errorf("write report: %v", err)
	}
	if err := writeSummary(getenv("GITHUB_STEP_SUMMARY"), run); err != nil {
		out.errorf("write job summary: %v", err)
	}
	if err := writeOutputs(getenv("GITHUB_OUTPUT"), run, out.w); err != nil {
		out.errorf("write outputs: %v", err)
	}
	out.final(run)

	if len(outcome.Results) == 0 && isBadCredential(outcome.SourceErr) {
		// The key or org was wrong: input error, and nothing was touched.
		return ExitInvalidInput
	}
	return report.ExitCode(run)
}

func buildSource(cfg config.Config, red *redact.Redactor, onRetry func(string, int, time.Duration, error)) (tenant.Source, string) {
	if len(cfg.DatabaseURLs) > 0 {
		entries := make([]source.Entry, len(cfg.DatabaseURLs))
		for i, u := range cfg.DatabaseURLs {
			entries[i] = source.Entry{Name: u.Name, URL: u.URL}
		}
		return &source.List{Entries: entries, Selector: cfg.Selector}, fmt.Sprintf("database-urls (%d listed)", len(entries))
	}
	client := neon.New(neon.Options{
		BaseURL:           cfg.Neon.APIURL,
		APIKey:            cfg.Neon.APIKey,
		OrgID:             cfg.Neon.OrgID,
		RequestsPerMinute: cfg.Neon.RequestsPerMinute,
		UserAgent:         "pgfleet/" + Version,
		OnRetry:           onRetry,
	})
	return &source.Neon{
		Client:   client,
		Database: cfg.Neon.Database,
		Role:     cfg.Neon.Role,
		Branch:   cfg.Neon.Branch,
		Selector: cfg.Selector,
		OnSecret: red.Add,
	}, fmt.Sprintf("the Neon API (%s, database %s, role %s)", cfg.Neon.APIURL, cfg.Neon.Database, cfg.Neon.Role)
}

// isBadCredential tells a rejected key or missing org id: user input.
func isBadCredential(err error) bool {
	var apiErr *neon.APIError
	if errors.As(err, &apiErr) && (apiErr.Status == 401 || apiErr.Status == 403) {
		return true
	}
	return neon.IsOrgIDRequired(err)
}

func defaultReportPath(getenv func(string) string, mode string) string {
	name := "pgfleet-" + mode + "-report.json"
	if dir := getenv("RUNNER_TEMP"); dir != "" {
		return filepath.Join(dir, name)
	}
	return name
}

// progressEvery is how often a progress line is printed. PGFLEET_PROGRESS_EVERY
// exists for tests that want to see progress lines in a short run.
func progressEvery(getenv func(string) string) time.Duration {
	if d, err := time.ParseDuration(getenv("PGFLEET_PROGRESS_EVERY")); err == nil && d > 0 {
		return d
	}
	return 5 * time.Second
}

func writeReport(path string, run report.Run) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	// Write-then-rename: a reader never sees half a report.
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := report.WriteJSON(f, run); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func writeSummary(path string, run report.Run) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, report.Summary(run, 0)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeOutputs appends name=value lines to $GITHUB_OUTPUT; outside Actions
// there is no such file and the final console lines carry the same numbers.
func writeOutputs(path string, run report.Run, w io.Writer) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	outputs := report.Outputs(run)
	for _, k := range sorted(keys(outputs)) {
		v := outputs[k]
		if strings.ContainsAny(v, "\r\n") {
			return errors.Join(f.Close(), fmt.Errorf("output %s has a newline", k))
		}
		fmt.Fprintf(f, "%s=%s\n", k, v)
	}
	return f.Close()
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// lockedWriter serialises writes from the runner, sources and mask commands.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

const usage = `pgfleet: operate on a fleet of tenant Postgres databases (one Neon project per customer).

Usage:
  pgfleet migrate [--flag=value ...]

Every action input is also a flag of the same name, and INPUT_<NAME> variables
are read as the Actions runner sets them. Main flags:
  --neon-api-key        Neon API key (or set NEON_API_KEY)
  --database-urls       one tenant per line, name=postgres://... (instead of Neon)
  --migrations-dir      dbmate migrations (default db/migrations)
  --projects, --exclude-projects, --shard i/n, --canary N|globs
  --concurrency 10, --tenant-timeout 10m, --max-failures N, --dry-run
  --report-file PATH    JSON report (default pgfleet-<mode>-report.json)

Exit status: 0 all tenants succeeded or were up to date, 1 a tenant failed or
the run was cancelled, 2 invalid input (nothing was touched).
`
