// Package app is pgfleet's entry point: inputs in, a fleet run, and the
// summary, outputs, JSON report and exit status out. main.go only wires it to
// the process (arguments, environment, signals). The modes are in the
// registry below; nothing else here knows one.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/backup"
	"github.com/pgfleet/pgfleet/internal/config"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/neon"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/redact"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/restore"
	"github.com/pgfleet/pgfleet/internal/secrets"
	"github.com/pgfleet/pgfleet/internal/source"
	"github.com/pgfleet/pgfleet/internal/status"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// modes is the registry: adding a mode is its package plus one line here.
var modes = []mode.Mode{
	migrate.Mode{},
	migrate.RollbackMode{},
	backup.Mode{},
	restore.Mode{},
	secrets.Mode{},
	status.Mode{},
}

// Exit statuses.
const (
	ExitOK           = 0 // every selected tenant succeeded or was up to date
	ExitFailed       = 1 // a tenant failed, listing failed, or the run was cancelled
	ExitInvalidInput = 2 // bad input; nothing was touched
)

// Version is set at build time.
var Version = "dev"

// Table is the one table of inputs and outputs: the shared ones and every
// registered mode's.
func Table() *input.Table {
	decls := make([]input.ModeDecl, len(modes))
	for i, m := range modes {
		decls[i] = input.ModeDecl{Name: m.Name(), Inputs: m.Inputs(), Outputs: m.Outputs()}
	}
	return input.NewTable(decls)
}

func lookupMode(name string) mode.Mode {
	for _, m := range modes {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

func modeNames() []string {
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = m.Name()
	}
	return names
}

// Main runs pgfleet. ctx is cancelled on SIGINT/SIGTERM.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return MainWithStdin(ctx, args, getenv, nil, stdout, stderr)
}

// MainWithStdin is Main with standard input (database-urls-file: -).
func MainWithStdin(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := newConsole(getenv, stdout, stderr)
	table := Table()

	if slices.Contains(args, "--version") || (len(args) == 1 && args[0] == "version") {
		fmt.Fprintf(stdout, "pgfleet %s\n", Version)
		return ExitOK
	}
	if len(args) > 0 && args[0] == "help" {
		args = append(args[1:], "--help")
	}
	flags, err := table.ParseArgs(args)
	if errors.Is(err, input.ErrHelp) {
		m := flags["mode"]
		if lookupMode(m) == nil {
			m = ""
		}
		fmt.Fprint(stdout, table.Help(m, synopses()))
		return ExitOK
	}
	if err != nil {
		out.invalid(err)
		return ExitInvalidInput
	}
	values := input.NewValues(table, func(name string) string {
		if v, ok := flags[name]; ok {
			return v
		}
		if v := out.gha.GetInput(name); v != "" {
			return v
		}
		if in, _ := table.Lookup(name); in.Env != "" {
			return getenv(in.Env)
		}
		return ""
	})

	// Register every credential before anything is printed, even before
	// validation: an error message could otherwise carry one.
	for _, in := range table.Inputs {
		if in.Secret {
			out.secrets.Add(values.Raw(in.Name))
		}
	}
	for _, line := range strings.Split(values.Raw("database-urls"), "\n") {
		registerURLPassword(out.secrets, line)
	}

	name := strings.ToLower(values.String("mode"))
	m := lookupMode(name)
	switch {
	case name == "":
		values.Bad("mode", "required: one of %s", strings.Join(modeNames(), ", "))
	case m == nil:
		values.Bad("mode", "unknown mode %q: want one of %s", name, strings.Join(modeNames(), ", "))
	}
	workspace := workspaceDir(getenv)
	cfg := config.Load(values, config.Files{Workspace: workspace, Stdin: stdin})
	for _, u := range cfg.DatabaseURLs {
		registerURLPassword(out.secrets, u.URL)
	}
	// One Neon client for the run, so every request shares one rate limiter.
	var client *neon.Client
	sourceFor := func(pooled bool) tenant.Source {
		if client == nil && len(cfg.DatabaseURLs) == 0 {
			client = newNeonClient(cfg, out)
		}
		return buildSource(cfg, client, out, pooled)
	}
	var job mode.Job
	if m != nil {
		job, err = m.Prepare(ctx, mode.Env{
			Inputs:    values,
			Config:    cfg,
			Workspace: workspace,
			Getenv:    getenv,
			Version:   Version,
			Secret:    out.secrets.Add,
			Warn:      out.warnf,
			Source:    sourceFor,
		})
	}
	reportPath, reportOutput := reportLocation(getenv, workspace, name, cfg.ReportFile)
	if err == nil && values.Err() == nil {
		if werr := checkWritable(reportPath); werr != nil {
			values.Bad("report-file", "cannot write the report to %s: %v", reportPath, werr)
		}
	}
	var inErr *input.Error
	if err != nil && values.Err() == nil && !errors.As(err, &inErr) && !isBadCredential(err) {
		// Not the input: a mode that reads the fleet or an API while it
		// prepares met an outage. Nothing was touched, but no fix of the
		// input would help: exit 1, like any failed run.
		out.errorf("%s: preparing the run failed, nothing was touched: %v", name, err)
		return ExitFailed
	}
	if err := errors.Join(values.Err(), err); err != nil {
		out.invalid(err)
		return ExitInvalidInput
	}

	src := sourceFor(false)
	if o, ok := job.(mode.SourceOverride); ok {
		src = o.Source()
	}
	where := sourceName(cfg)
	fmt.Fprintf(out.w, "pgfleet %s %s: %s; tenants from %s; concurrency %d, tenant-timeout %s\n",
		Version, name, job.Describe(), where, cfg.Concurrency, cfg.TenantTimeout)

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
		ProgressNote:  progressNote(job),
	}, src, job.Work)
	var finishErr error
	if f, ok := job.(mode.Finisher); ok && !outcome.Cancelled && outcome.Stopped == "" && outcome.SourceErr == nil {
		finishErr = f.Finish(ctx, outcome.Results)
	}

	run := report.Run{
		Mode:       name,
		View:       job,
		Started:    started,
		Duration:   time.Since(started),
		Results:    outcome.Results,
		DryRun:     job.DryRun(),
		Cancelled:  outcome.Cancelled,
		Stopped:    outcome.Stopped,
		SourceErr:  outcome.SourceErr,
		ReportFile: reportOutput,
		Scrub:      out.secrets.Scrub,
	}
	code := report.ExitCode(run)
	if finishErr != nil {
		out.errorf("%s: %v", name, finishErr)
		code = ExitFailed
	}
	if outcome.SourceErr != nil {
		out.errorf("listing tenants failed: %v", outcome.SourceErr)
	} else if len(outcome.Results) == 0 {
		out.warnf("no tenants selected: check projects, exclude-projects and shard (and, for Neon, that the key sees the projects: neon-org-id)")
	}
	// The report, summary and outputs are what the user asked for: a failure
	// to write any of them fails the run.
	if err := writeReport(reportPath, run); err != nil {
		out.errorf("write report %s: %v", reportPath, err)
		code = ExitFailed
	}
	if err := out.publish(run); err != nil {
		out.errorf("%v", err)
		code = ExitFailed
	}
	out.final(run)

	switch {
	case outcome.NoCanary:
		out.invalid(&input.Error{Input: "canary", Problem: fmt.Sprintf("%q matches none of the %d selected tenants (project names or ids; in a shard, only that shard's tenants): no tenant was started", strings.Join(cfg.CanaryGlobs, ","), len(outcome.Results))})
		return ExitInvalidInput
	case len(outcome.Results) == 0 && isBadCredential(outcome.SourceErr):
		// The key or org was wrong: input error, and nothing was touched.
		return ExitInvalidInput
	}
	return code
}

func synopses() map[string]string {
	s := map[string]string{}
	for _, m := range modes {
		s[m.Name()] = m.Synopsis()
	}
	return s
}

// registerURLPassword registers the password of one database-urls line
// (name=URL or a bare URL) as both Go's URL parser and pgx's read it: a
// line not yet validated may be read differently by the two.
func registerURLPassword(r *redact.Redactor, line string) {
	line = strings.TrimSpace(line)
	candidates := []string{line}
	if _, u, ok := strings.Cut(line, "="); ok {
		candidates = append(candidates, strings.TrimSpace(u))
	}
	for _, c := range candidates {
		r.Add(tenant.Password(c))
		if cfg, err := pgconnect.ParseURL(c); err == nil {
			r.Add(cfg.Password)
		}
	}
}

// sourceName says where tenants come from, for the first log line.
func sourceName(cfg config.Config) string {
	if len(cfg.DatabaseURLs) > 0 {
		return fmt.Sprintf("a list (%s)", report.Plural(len(cfg.DatabaseURLs), "database", "databases"))
	}
	return fmt.Sprintf("the Neon API (%s, database %s, role %s)", cfg.Neon.APIURL, cfg.Neon.Database, cfg.Neon.Role)
}

func newNeonClient(cfg config.Config, out *console) *neon.Client {
	return neon.New(neon.Options{
		BaseURL:           cfg.Neon.APIURL,
		APIKey:            cfg.Neon.APIKey,
		OrgID:             cfg.Neon.OrgID,
		RequestsPerMinute: cfg.Neon.RequestsPerMinute,
		UserAgent:         "pgfleet/" + Version,
		OnRetry:           out.apiRetry,
		Redact:            out.secrets.Scrub,
	})
}

func buildSource(cfg config.Config, client *neon.Client, out *console, pooled bool) tenant.Source {
	if len(cfg.DatabaseURLs) > 0 {
		entries := make([]source.Entry, len(cfg.DatabaseURLs))
		for i, u := range cfg.DatabaseURLs {
			entries[i] = source.Entry{Name: u.Name, URL: u.URL}
		}
		return &source.List{Entries: entries, Selector: cfg.Selector}
	}
	return &source.Neon{
		Client:   client,
		Database: cfg.Neon.Database,
		Role:     cfg.Neon.Role,
		Branch:   cfg.Neon.Branch,
		Pooled:   pooled,
		Selector: cfg.Selector,
		OnSecret: out.secrets.Add,
	}
}

// isBadCredential tells a rejected key or missing org id: user input.
func isBadCredential(err error) bool {
	var apiErr *neon.APIError
	if errors.As(err, &apiErr) && (apiErr.Status == 401 || apiErr.Status == 403) {
		return true
	}
	return neon.IsOrgIDRequired(err)
}

// workspaceDir is where the user's relative paths point: GITHUB_WORKSPACE
// in Actions, else the working directory.
func workspaceDir(getenv func(string) string) string {
	if w := getenv("GITHUB_WORKSPACE"); w != "" {
		return w
	}
	wd, _ := os.Getwd()
	return wd
}

// reportLocation is where the report is written and how the report-file
// output names it. In Actions the default is in the workspace and the
// output is relative to it: inside a Docker action $RUNNER_TEMP is a
// container path the next step (actions/upload-artifact) cannot see, while
// the workspace is mounted at the same relative place. On the CLI the
// default stays out of the user's working tree.
func reportLocation(getenv func(string) string, workspace, mode, given string) (path, output string) {
	inActions := getenv("GITHUB_ACTIONS") == "true"
	name := "pgfleet-" + mode + "-report.json"
	switch {
	case given != "" && !filepath.IsAbs(given) && inActions:
		path = filepath.Join(workspace, given)
	case given != "":
		path, _ = filepath.Abs(given)
	case inActions:
		path = filepath.Join(workspace, name)
	default:
		path = filepath.Join(os.TempDir(), name)
	}
	output = path
	if inActions {
		if rel, err := filepath.Rel(workspace, path); err == nil && !strings.HasPrefix(rel, "..") {
			output = rel
		}
	}
	return path, output
}

// checkWritable makes sure the report can be written before any tenant is
// touched: a report the user asked for must not silently go missing.
func checkWritable(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// progressNote is the job's own progress figures, when it has any.
func progressNote(job mode.Job) func() string {
	if p, ok := job.(mode.Progresser); ok {
		return p.ProgressNote
	}
	return nil
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
	// Write-then-rename: a reader never sees half a report.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	err = report.WriteJSON(f, run)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
