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
	"github.com/pgfleet/pgfleet/internal/source"
	"github.com/pgfleet/pgfleet/internal/status"
	"github.com/pgfleet/pgfleet/internal/syncsecrets"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// modes is the registry: adding a mode is its package plus one line here.
var modes = []mode.Mode{
	migrate.Mode{},
	migrate.RollbackMode{},
	backup.Mode{},
	restore.Mode{},
	syncsecrets.Mode{},
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

// invalidInput is what prepare refused as bad input: it is printed
// already, and the run exits 2.
type invalidInput struct{ err error }

func (e *invalidInput) Error() string { return e.err.Error() }
func (e *invalidInput) Unwrap() error { return e.err }

// MainWithStdin runs pgfleet: parse, prepare, run, publish, in that order,
// and returns the exit status. ctx is cancelled on SIGINT/SIGTERM; stdin is
// read for database-urls-file: -.
func MainWithStdin(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "report" { // commands on finished runs' reports: reportcmd.go
		return reportCommand(args[1:], getenv, stdout, stderr)
	}
	out := newConsole(getenv, stdout, stderr)
	flags, status, done := parse(args, stdout, out)
	if done {
		return status
	}
	p, err := prepare(ctx, flags, getenv, stdin, out)
	if err != nil {
		var bad *invalidInput
		status := ExitInvalidInput
		if !errors.As(err, &bad) {
			// Not the input: a mode that reads the fleet or an API while
			// it prepares met an outage. Nothing was touched, but no fix of
			// the input would help: exit 1, like any failed run.
			out.errorf("%s: preparing the run failed, nothing was touched: %v", p.name, err)
			status = ExitFailed
		}
		publishNotRun(p, err, out)
		return status
	}
	f := run(ctx, p, getenv, out)
	f.publishErr = publish(p, f, out)
	return exitStatus(f, out)
}

// parse reads the command line. done means the run ends here (--version,
// --help, a malformed command line) with status.
func parse(args []string, stdout io.Writer, out *console) (flags map[string]string, status int, done bool) {
	table := Table()
	if slices.Contains(args, "--version") || (len(args) == 1 && args[0] == "version") {
		fmt.Fprintf(stdout, "pgfleet %s\n", Version)
		return nil, ExitOK, true
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
		return nil, ExitOK, true
	}
	if err != nil {
		out.invalid(err)
		return nil, ExitInvalidInput, true
	}
	return flags, 0, false
}

// prepared is a run whose inputs were read and checked, ready to start.
type prepared struct {
	name         string // the mode's
	job          mode.Job
	cfg          config.Config
	src          tenant.Source
	reportPath   string
	reportOutput string // the report-file output
}

// prepare reads every input and prepares the mode's job. An error is
// errInvalidInput (printed already) or an outage met while preparing.
func prepare(ctx context.Context, flags map[string]string, getenv func(string) string, stdin io.Reader, out *console) (*prepared, error) {
	table := Table()
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
	for i, in := range table.Inputs {
		if in.Secret {
			out.secrets.Add(values.Raw(&table.Inputs[i]))
		}
	}
	for _, line := range strings.Split(values.Raw(input.DatabaseURLs), "\n") {
		registerURLPassword(out.secrets, line)
	}

	p := &prepared{name: strings.ToLower(values.String(input.Mode))}
	m := lookupMode(p.name)
	switch {
	case p.name == "":
		values.Bad(input.Mode, "required: one of %s", strings.Join(modeNames(), ", "))
	case m == nil:
		values.Bad(input.Mode, "unknown mode %q: want one of %s", p.name, strings.Join(modeNames(), ", "))
	}
	workspace := workspaceDir(getenv)
	if inContainerAction(getenv) {
		checkContainerPaths(values, table, p.name, workspace)
	}
	p.cfg = config.Load(values, config.Files{Workspace: workspace, Stdin: stdin})
	for _, u := range p.cfg.DatabaseURLs {
		registerURLPassword(out.secrets, u.URL)
	}
	// One Neon client for the run, so every request shares one rate limiter.
	var client *neon.Client
	sourceFor := func(pooled bool) tenant.Source {
		if client == nil && len(p.cfg.DatabaseURLs) == 0 {
			client = newNeonClient(p.cfg, out)
		}
		return buildSource(p.cfg, client, out, pooled)
	}
	var neonClient func() *neon.Client
	if len(p.cfg.DatabaseURLs) == 0 {
		neonClient = func() *neon.Client {
			if client == nil {
				client = newNeonClient(p.cfg, out)
			}
			return client
		}
	}
	var err error
	if m != nil {
		p.job, err = m.Prepare(ctx, mode.Env{
			Inputs:    values,
			Config:    p.cfg,
			Workspace: workspace,
			Getenv:    getenv,
			Version:   Version,
			Secret:    out.secrets.Add,
			Scrub:     out.secrets.Scrub,
			Warn:      out.warnf,
			Log:       func(format string, a ...any) { fmt.Fprintf(out.w, format+"\n", a...) },
			Source:    sourceFor,
			Neon:      neonClient,
		})
	}
	reportName := ""
	if m != nil {
		reportName = p.name
	}
	p.reportPath, p.reportOutput = reportLocation(getenv, workspace, reportName, p.cfg.ReportFile)
	if err == nil && values.Err() == nil {
		if werr := checkWritable(p.reportPath); werr != nil {
			values.Bad(input.ReportFile, "cannot write the report to %s: %v", p.reportPath, werr)
		}
	}
	if err != nil && !isInputError(err) {
		return p, err
	}
	if err := joinInputErrors(values.Err(), err); err != nil {
		out.invalid(err)
		return p, &invalidInput{err}
	}
	p.src = sourceFor(false)
	if o, ok := p.job.(mode.SourceOverride); ok {
		p.src = o.Source()
	}
	return p, nil
}

// finished is a run that went through the fleet.
type finished struct {
	run        report.Run
	outcome    fleet.Outcome
	finishErr  error // the job's Finish
	publishErr error // writing the report, summary or outputs
	canaryNone error // the canary selected no tenant: an input error
}

// run works on every selected tenant, then finishes the job.
func run(ctx context.Context, p *prepared, getenv func(string) string, out *console) finished {
	cfg := p.cfg
	fmt.Fprintf(out.w, "pgfleet %s %s: %s; tenants from %s; concurrency %d, tenant-timeout %s\n",
		Version, p.name, p.job.Describe(), sourceName(cfg), cfg.Concurrency, cfg.TenantTimeout)

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
		ProgressNote:  progressNote(p.job),
	}, p.src, p.job.Work)
	f := finished{outcome: outcome}
	if fin, ok := p.job.(mode.Finisher); ok && !outcome.Cancelled && outcome.Stopped == nil && outcome.SourceErr == nil {
		f.finishErr = fin.Finish(ctx, outcome.Results)
	}
	if errors.Is(outcome.Stopped, fleet.ErrNoCanaryMatch) {
		f.canaryNone = &input.Error{Input: "canary", Problem: fmt.Sprintf("%q matches none of the %d selected tenants (project names or ids; in a shard, only that shard's tenants): no tenant was started", strings.Join(cfg.CanaryGlobs, ","), len(outcome.Results))}
	}
	f.run = report.Run{
		Mode:       p.name,
		View:       p.job,
		Started:    started,
		Duration:   time.Since(started),
		Outcome:    outcome,
		DryRun:     p.job.DryRun(),
		FinishErr:  f.finishErr,
		ReportFile: p.reportOutput,
		Scrub:      out.secrets.Scrub,
	}
	return f
}

// publish writes the report, the summary and the outputs. They are what the
// user asked for: a failure to write any of them fails the run.
func publish(p *prepared, f finished, out *console) error {
	if f.finishErr != nil {
		out.errorf("%s: %v", p.name, f.finishErr)
	}
	if f.outcome.SourceErr != nil {
		out.errorf("listing tenants failed: %v", f.outcome.SourceErr)
	} else if len(f.outcome.Results) == 0 {
		out.warnf("no tenants selected: check projects, exclude-projects and shard (and, for Neon, that the key sees the projects: neon-org-id)")
	}
	var errs []error
	if err := writeReport(p.reportPath, f.run); err != nil {
		err = fmt.Errorf("write report %s: %w", p.reportPath, err)
		out.errorf("%v", err)
		errs = append(errs, err)
	}
	if err := out.publish(f.run); err != nil {
		out.errorf("%v", err)
		errs = append(errs, err)
	}
	out.final(f.run)
	return errors.Join(errs...)
}

// publishNotRun writes the report (with why the run never started) and the
// outputs of a run that failed while preparing, so a workflow's next steps
// (actions/upload-artifact, a retry reading the outputs) find them. A
// report-file that was itself refused is not written. Failing to write
// them changes no exit status: the run has failed already.
func publishNotRun(p *prepared, err error, out *console) {
	run := report.Run{Mode: p.name, PrepareErr: err, ReportFile: p.reportOutput, Scrub: out.secrets.Scrub}
	if reportFileRefused(err) {
		run.ReportFile = ""
	} else if werr := writeReportDir(p.reportPath, run); werr != nil {
		out.errorf("write report %s: %v", p.reportPath, werr)
		run.ReportFile = ""
	}
	if perr := out.publish(run); perr != nil {
		out.errorf("%v", perr)
	}
}

// reportFileRefused reports that err holds a problem with report-file.
func reportFileRefused(err error) bool {
	for _, e := range input.Split(errors.Unwrap(err)) {
		var ie *input.Error
		if errors.As(e, &ie) && ie.Input == input.ReportFile.Name {
			return true
		}
	}
	return false
}

// writeReportDir writes the report, making its folder first.
func writeReportDir(path string, run report.Run) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeReport(path, run)
}

// exitStatus is the one place a finished run becomes its exit status:
// 2 when the input was at fault and nothing was touched, 0 when every
// selected tenant succeeded or was up to date and everything was written,
// else 1.
func exitStatus(f finished, out *console) int {
	switch {
	case f.canaryNone != nil:
		out.invalid(f.canaryNone)
		return ExitInvalidInput
	case len(f.run.Results) == 0 && isBadCredential(f.run.SourceErr):
		// The key or org was wrong: input error, and nothing was touched.
		return ExitInvalidInput
	case f.publishErr != nil, !f.run.OK():
		return ExitFailed
	}
	return ExitOK
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
		for _, p := range pgconnect.Passwords(c) {
			r.Add(p)
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
		return source.List(entries, cfg.Selector)
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

// isInputError tells what Prepare returned for bad input (an *input.Error,
// or a key Neon rejected) from an outage it met.
func isInputError(err error) bool {
	var inErr *input.Error
	return errors.As(err, &inErr) || isBadCredential(err)
}

// joinInputErrors is every input problem once: those recorded in the
// inputs and those Prepare returned, which are mostly the same ones.
func joinInputErrors(recorded, returned error) error {
	errs := input.Split(recorded)
	for _, e := range input.Split(returned) {
		ie, ok := e.(*input.Error)
		if !slices.ContainsFunc(errs, func(r error) bool { return ok && r == error(ie) }) {
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
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
	if mode == "" {
		name = "pgfleet-report.json" // the mode was missing or unknown
	}
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
