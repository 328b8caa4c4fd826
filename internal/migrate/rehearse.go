package migrate

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/neon"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// A rehearsal (rehearse: true) runs the pending migrations of each tenant
// on a throwaway Neon branch of the tenant's branch: a copy-on-write copy
// of its real data, so a NOT NULL over nulls, a unique index over
// duplicates or a CHECK that old rows break fails there, with the real SQL
// error, and the time each file takes is the time it would hold its locks
// in production. The branch gets the migrator's whole apply path (Work:
// the same lock, transaction per file, lock_timeout and retries), then is
// deleted whatever happened; its expires_at is the net when the process is
// killed before it can delete. Nothing ever connects to the tenant's own
// branch: the tenants the runner gets carry no URL to resolve.

// The rehearsal's inputs (migrate also reads input.GitHubToken for the
// pull request's comment).
var (
	InputRehearse       = &input.Input{Name: "rehearse", Default: "false", Bool: true, Description: "Rehearse instead of migrating: apply the pending migrations to a throwaway Neon branch of each tenant (a copy of its data), report per tenant whether they would fail (the SQL error) and how long each file took, then delete the branch. Production is never connected to. Exits 1 when any tenant would fail. Neon only (not with database-urls), not with dry-run."}
	InputRehearseTTL    = &input.Input{Name: "rehearse-ttl", Default: "1h", Description: "expires_at of each rehearsal branch, from its creation (Go duration, at most 720h = 30 days): Neon deletes the branch then even if the run is killed before deleting it."}
	InputRehearseSample = &input.Input{Name: "rehearse-sample", Default: "0", Description: "Rehearse only on the N tenants with the most storage plus N chosen at random (canaries always included); 0 = every selected tenant."}
)

func rehearseInputs() []*input.Input {
	return []*input.Input{InputRehearse, InputRehearseTTL, InputRehearseSample, input.GitHubToken}
}

// maxRehearseTTL is Neon's limit on expires_at: at most 30 days ahead.
const maxRehearseTTL = 30 * 24 * time.Hour

// rehearsalDeleteTimeout bounds a branch's deletion in a normal run (it
// may wait out Neon's 423 while the creation's operations finish); once
// the run is cancelled the deletion gets rehearsalDeleteAfterCancel, so the
// process still exits within the 10 s GitHub gives it.
const (
	rehearsalDeleteTimeout     = 2 * time.Minute
	rehearsalDeleteAfterCancel = 3 * time.Second
)

// prepareRehearsal turns job into a rehearsal when rehearse is set;
// otherwise it returns job as it is. Refusals are input errors, before
// anything is touched.
func prepareRehearsal(env mode.Env, job *Job) mode.Job {
	in := env.Inputs
	if !in.Bool(InputRehearse) {
		return job
	}
	// Duration has already said what is wrong with an unreadable value (0).
	if ttl := in.Duration(InputRehearseTTL); ttl != 0 && (ttl < time.Minute || ttl > maxRehearseTTL) {
		in.Bad(InputRehearseTTL, "want a duration from 1m to 720h (Neon accepts expires_at at most 30 days ahead), got %q", in.String(InputRehearseTTL))
	}
	sample := in.Int(InputRehearseSample, 0, 1_000_000, "tenants rehearsed by size and at random")
	switch {
	case len(env.Config.DatabaseURLs) > 0 || env.Neon == nil:
		in.Bad(InputRehearse, "needs tenants from the Neon API: a list of database-urls has no branches to copy, so there is nothing to rehearse on (remove database-urls and set neon-api-key)")
	case job.o.DryRun:
		in.Bad(InputRehearse, "a rehearsal already changes nothing in production; it cannot be combined with dry-run (set one of the two)")
	}
	if in.Err() != nil {
		return job
	}
	getenv := env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return &Rehearsal{
		Job:         job,
		client:      env.Neon(),
		source:      env.Source,
		secret:      env.Secret,
		branch:      env.Config.Neon.Branch,
		database:    env.Config.Neon.Database,
		role:        env.Config.Neon.Role,
		ttl:         in.Duration(InputRehearseTTL),
		name:        rehearsalBranchName(getenv),
		calls0:      env.Neon().Calls(),
		githubToken: in.Raw(input.GitHubToken),
		getenv:      getenv,
		scrub:       scrubOrKeep(env.Scrub),
		warn:        env.Warn,
		sample: sampling{
			n:           sample,
			canaryCount: env.Config.CanaryCount,
			canaryGlobs: env.Config.CanaryGlobs,
		},
	}
}

var runIDPattern = regexp.MustCompile(`^[0-9]{1,20}$`)

// rehearsalBranchName names the branches of this run so that a person
// browsing the project in Neon's console sees what they are and which run
// made them: pgfleet-rehearsal-<GITHUB_RUN_ID>[-<attempt>], or a random id
// outside Actions.
func rehearsalBranchName(getenv func(string) string) string {
	id := getenv("GITHUB_RUN_ID")
	if !runIDPattern.MatchString(id) {
		return "pgfleet-rehearsal-" + randomHex(4)
	}
	if a := getenv("GITHUB_RUN_ATTEMPT"); runIDPattern.MatchString(a) && a != "1" {
		id += "-" + a
	}
	return "pgfleet-rehearsal-" + id
}

// Rehearsal is migrate with rehearse: true.
type Rehearsal struct {
	*Job
	client             *neon.Client
	source             func(pooled bool) tenant.Source
	secret             func(string)
	branch             string // the tenants' branch (name or id); "" = default
	database, role     string
	ttl                time.Duration
	name               string // every rehearsal branch's name
	calls0             int64  // API calls made before the run
	created, deleted   atomic.Int32
	expiryRefused      atomic.Bool
	undeletedWithNoNet atomic.Int32
	sample             sampling
	// The pull request comment (rehearse_comment.go).
	githubToken string
	getenv      func(string) string
	scrub       func(string) string
	warn        func(string, ...any)
}

var (
	_ mode.Job            = (*Rehearsal)(nil)
	_ mode.SourceOverride = (*Rehearsal)(nil)
	_ mode.Finisher       = (*Rehearsal)(nil)
)

// Source hands the runner the selected tenants without their connection
// strings: a rehearsal must never connect to a tenant's own branch, so
// there is nothing to resolve.
func (r *Rehearsal) Source() tenant.Source {
	src := tenant.Source(noURLSource{r.source(false)})
	if r.sample.n > 0 {
		r.sample.from = src
		return &r.sample
	}
	return src
}

type noURLSource struct{ tenant.Source }

func (s noURLSource) Tenants(ctx context.Context, yield func(tenant.Tenant) bool) error {
	return s.Source.Tenants(ctx, func(t tenant.Tenant) bool {
		t.URL, t.Resolve = "", nil
		return yield(t)
	})
}

func (r *Rehearsal) Describe() string {
	return fmt.Sprintf("rehearsal of %d migration files from %s (latest %s) on a throwaway branch %s of each tenant (expires after %s); production is not touched",
		len(r.set.Files), r.set.Dir, r.set.Latest(), r.name, r.ttl)
}

// DryRun is false: the rehearsal's own sections say what was done and that
// production was not touched; the dry-run banner ("tenants have something
// to do") would misread its results.
func (r *Rehearsal) DryRun() bool { return false }

// FileTiming is one migration file as a rehearsal saw it.
type FileTiming struct {
	File    string  `json:"file"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"` // 0 for a failed file
}

// RehearsalDetail is what a rehearsal reports about one tenant.
type RehearsalDetail struct {
	*Detail                    // the versions and files as Work saw them on the branch
	Branch        string       `json:"rehearsal_branch"`
	BranchID      string       `json:"rehearsal_branch_id,omitempty"`
	ExpiresAt     string       `json:"rehearsal_branch_expires_at,omitempty"`
	BranchDeleted bool         `json:"rehearsal_branch_deleted"`
	Files         []FileTiming `json:"rehearsal_files"`
	WouldFail     bool         `json:"would_fail"`
	SampledAs     string       `json:"rehearsal_sampled_as,omitempty"` // canary, largest or random (rehearse-sample)
}

// Cells: would, slowest file, files rehearsed.
func (d *RehearsalDetail) Cells() []string {
	verdict := "ok"
	if d.WouldFail {
		verdict = "would fail"
		if d.Detail != nil && d.FailedFile != "" {
			verdict += " at " + d.FailedFile
		}
	}
	slowest := "-"
	if f, ok := d.slowest(); ok {
		slowest = fmt.Sprintf("%s %s", f.File, seconds(f.Seconds))
	}
	ok := 0
	for _, f := range d.Files {
		if f.OK {
			ok++
		}
	}
	return []string{verdict, slowest, fmt.Sprintf("%d of %d", ok, len(d.Files))}
}

// LogLines: the branch and the migrator's own lines.
func (d *RehearsalDetail) LogLines() []string {
	var out []string
	if d.BranchID != "" {
		state := "deleted"
		if !d.BranchDeleted {
			state = "NOT deleted"
			if d.ExpiresAt != "" {
				state += ", expires at " + d.ExpiresAt
			}
		}
		out = append(out, fmt.Sprintf("rehearsal branch %s (%s): %s", d.Branch, d.BranchID, state))
	}
	if d.Detail != nil {
		out = append(out, d.Detail.LogLines()...)
	}
	return out
}

func (d *RehearsalDetail) slowest() (FileTiming, bool) {
	var best FileTiming
	found := false
	for _, f := range d.Files {
		if f.OK && (!found || f.Seconds > best.Seconds) {
			best, found = f, true
		}
	}
	return best, found
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}

// Work rehearses one tenant: branch, Work on the branch, delete the branch.
func (r *Rehearsal) Work(ctx context.Context, t tenant.Tenant) (fleet.Status, fleet.Detail, error) {
	d := &RehearsalDetail{Branch: r.name, Files: []FileTiming{}, SampledAs: r.sample.sampledAs(t.ID)}
	parentID := ""
	if r.branch != "" {
		id, err := r.client.BranchID(ctx, t.ID, r.branch)
		if err != nil {
			return "", d, fmt.Errorf("rehearsal: find the tenant's branch: %w", err)
		}
		parentID = id
	}
	br, err := r.createBranch(ctx, t.ID, parentID)
	if err != nil {
		if neon.IsBranchLimit(err) {
			return "", d, fmt.Errorf("rehearsal: no branch could be made: the project is at its plan's branch limit (delete unused branches, or raise the plan's limit): %w", err)
		}
		return "", d, fmt.Errorf("rehearsal: create branch %s: %w", r.name, err)
	}
	r.created.Add(1)
	d.BranchID, d.ExpiresAt = br.ID, br.ExpiresAt
	defer func() { d.BranchDeleted = r.deleteBranch(ctx, t.ID, br) }()

	uri := ""
	if len(br.ConnectionURIs) > 0 {
		uri = br.ConnectionURIs[0]
	} else {
		// Several roles or databases on the parent: Neon gives no URI
		// with the branch, so it is asked for like the tenant's own.
		uri, err = r.client.ConnectionURI(ctx, t.ID, br.ID, r.database, r.role, false)
		if err != nil {
			return "", d, fmt.Errorf("rehearsal: connection URI of branch %s: %w", br.ID, err)
		}
	}
	if pw := tenant.Password(uri); pw != "" && r.secret != nil {
		r.secret(pw)
	}
	onBranch := t
	onBranch.URL, onBranch.Resolve = uri, nil
	status, detail, err := r.Migrator.Work(ctx, onBranch)
	if md, _ := detail.(*Detail); md != nil {
		d.Detail = md
		d.Files = fileTimings(md)
	}
	if err != nil {
		d.WouldFail = true
		return "", d, err
	}
	return status, d, nil
}

// createBranch makes the tenant's rehearsal branch with an expires_at, or
// without one once Neon has refused it (an account outside the early
// access program): the run still deletes its branches, and says that no
// expiry net was set.
func (r *Rehearsal) createBranch(ctx context.Context, projectID, parentID string) (neon.CreatedBranch, error) {
	if !r.expiryRefused.Load() {
		br, err := r.client.CreateBranch(ctx, projectID, parentID, r.name, time.Now().Add(r.ttl))
		if !neon.IsExpiresAtRefused(err) {
			return br, err
		}
		r.expiryRefused.Store(true)
	}
	return r.client.CreateBranch(ctx, projectID, parentID, r.name, time.Time{})
}

// deleteBranch deletes the branch with a context of its own: the tenant's
// may be over (tenant-timeout, SIGTERM), and the branch must go anyway.
// After a cancellation it gets only a few seconds; expires_at is the net.
func (r *Rehearsal) deleteBranch(ctx context.Context, projectID string, br neon.CreatedBranch) bool {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rehearsalDeleteTimeout)
	defer cancel()
	shorten := func() {
		t := time.AfterFunc(rehearsalDeleteAfterCancel, cancel)
		context.AfterFunc(dctx, func() { t.Stop() })
	}
	if ctx.Err() != nil {
		shorten()
	} else {
		stop := context.AfterFunc(ctx, shorten)
		defer stop()
	}
	if err := r.client.DeleteBranch(dctx, projectID, br.ID, br.Operations); err != nil {
		if br.ExpiresAt == "" {
			r.undeletedWithNoNet.Add(1)
		}
		return false
	}
	r.deleted.Add(1)
	return true
}

// appliedLine is the line applyPending writes after each file.
var appliedLine = regexp.MustCompile(`(?m)^Applied: (\S+) in (\S+)$`)

// fileTimings reads each file's time from the migrator's log (the lines
// of files that did not commit are already gone from it), so the
// rehearsal measures exactly what a real run does; the first pending file
// is the one that failed.
func fileTimings(d *Detail) []FileTiming {
	var out []FileTiming
	for _, m := range appliedLine.FindAllStringSubmatch(d.Log, -1) {
		dur, err := time.ParseDuration(m[2])
		if err != nil || !slices.Contains(d.Applied, m[1]) {
			continue
		}
		out = append(out, FileTiming{File: m[1], OK: true, Seconds: dur.Seconds()})
	}
	if d.FailedFile != "" {
		out = append(out, FileTiming{File: d.FailedFile})
	}
	return out
}

func (r *Rehearsal) Columns() []report.Column {
	return []report.Column{{Title: "rehearsal"}, {Title: "slowest file"}, {Title: "files ok"}}
}

// maxRehearsalRows bounds each table of the summary: a fleet of thousands
// gets the worst tenants, not a row each.
const maxRehearsalRows = 20

// Sections: the verdict and totals, the failing tenants with their errors,
// and the slowest files.
func (r *Rehearsal) Sections(results []fleet.Result) []report.Section {
	failing, wouldFail, rehearsed := classify(results)
	note := fmt.Sprintf("The migration would fail on %d of %d tenants.", wouldFail, len(results))
	if len(failing) == 0 {
		note = fmt.Sprintf("The migration would succeed on all %d tenants.", len(results))
	} else if n := len(failing) - wouldFail; n > 0 {
		note += fmt.Sprintf(" %s not be rehearsed (see why below).", report.Plural(n, "tenant could", "tenants could"))
	}
	note += " Each was rehearsed on a throwaway branch of its data; production was not touched."
	if n := r.sample.note(); n != "" {
		note += " " + n
	}
	if r.expiryRefused.Load() {
		note += " Neon refused expires_at (early access): no expiry net was set; the run deleted its branches itself."
	} else {
		note += fmt.Sprintf(" Every branch had expires_at (its creation + %s) as the net.", r.ttl)
	}
	verdict := report.Section{
		Title:   "Rehearsal",
		Note:    note,
		Columns: []report.Column{{Title: ""}, {Title: "count", Numeric: true}},
		Rows: [][]string{
			{"would fail", strconv.Itoa(wouldFail)},
			{"not rehearsed (failed before or without a branch)", strconv.Itoa(len(failing) - wouldFail)},
			{"rehearsed", strconv.Itoa(len(rehearsed))},
			{"branches created", strconv.Itoa(int(r.created.Load()))},
			{"branches deleted", strconv.Itoa(int(r.deleted.Load()))},
			{"Neon API calls", strconv.FormatInt(r.client.Calls()-r.calls0, 10)},
		},
	}
	if n := r.undeletedWithNoNet.Load(); n > 0 {
		verdict.Rows = append(verdict.Rows, []string{"branches left without expires_at: delete them by hand (name " + r.name + ")", strconv.Itoa(int(n))})
	}

	failures := report.Section{
		Title:   "Would fail",
		Columns: []report.Column{{Title: "tenant"}, {Title: "file"}, {Title: "why"}},
	}
	for _, res := range failing[:min(len(failing), maxRehearsalRows)] {
		file, why := failureOf(res)
		failures.Rows = append(failures.Rows, []string{res.Tenant.String(), file, firstLine(why, 300)})
	}
	if len(failing) > maxRehearsalRows {
		failures.Rows = append(failures.Rows, []string{fmt.Sprintf("… and %d more (see the report file)", len(failing)-maxRehearsalRows), "", ""})
	}

	var slows []slowFile
	for _, res := range rehearsed {
		d := res.Detail.(*RehearsalDetail)
		for _, f := range d.Files {
			if f.OK {
				slows = append(slows, slowFile{res.Tenant.String(), f})
			}
		}
	}
	sortSlowest(slows)
	slowest := report.Section{
		Title:   "Slowest files",
		Note:    "How long each file ran on the tenant's data: about how long a production run would hold its locks.",
		Columns: []report.Column{{Title: "tenant"}, {Title: "file"}, {Title: "took", Numeric: true}},
	}
	for _, s := range slows[:min(len(slows), maxRehearsalRows)] {
		slowest.Rows = append(slowest.Rows, []string{s.tenant, s.f.File, seconds(s.f.Seconds)})
	}
	return []report.Section{verdict, failures, slowest}
}

// Outputs: would-fail, the number of tenants the migration would fail on.
func (r *Rehearsal) Outputs(results []fleet.Result) map[string]string {
	_, wouldFail, _ := classify(results)
	return map[string]string{"would-fail": strconv.Itoa(wouldFail)}
}

// ProgressNote: the files running longest on the branches.
func (r *Rehearsal) ProgressNote() string { return r.Job.ProgressNote() }

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// sampling is rehearse-sample: the n tenants with the most storage (where
// migrations run longest) plus n chosen at random (what nobody thought
// of), canaries always included. It must see every selected tenant before
// it picks, so it lists the whole fleet first.
type sampling struct {
	n           int
	canaryCount int
	canaryGlobs []string
	from        tenant.Source

	mu       sync.Mutex
	selected int
	why      map[string]string // tenant id -> why it was rehearsed
	counts   map[string]int    // why -> tenants
}

func (s *sampling) Tenants(ctx context.Context, yield func(tenant.Tenant) bool) error {
	var all []tenant.Tenant
	if err := s.from.Tenants(ctx, func(t tenant.Tenant) bool {
		all = append(all, t)
		return true
	}); err != nil {
		return err
	}
	picked := pickSample(all, s.n, s.canaryCount, s.canaryGlobs)
	s.mu.Lock()
	s.selected = len(all)
	s.why = map[string]string{}
	s.counts = map[string]int{}
	for _, p := range picked {
		s.why[p.t.ID] = p.why
		s.counts[p.why]++
	}
	s.mu.Unlock()
	for _, p := range picked {
		if !yield(p.t) {
			return ctx.Err()
		}
	}
	return nil
}

// note says which tenants were rehearsed and why; "" without sampling.
func (s *sampling) note() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.why == nil {
		return ""
	}
	var parts []string
	if n := s.counts["canary"]; n > 0 {
		parts = append(parts, report.Plural(n, "canary", "canaries"))
	}
	if n := s.counts["largest"]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d with the most storage", n))
	}
	if n := s.counts["random"]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d at random", n))
	}
	return fmt.Sprintf("Sampled (rehearse-sample: %d): %d of the %d selected tenants: %s.", s.n, len(s.why), s.selected, strings.Join(parts, ", "))
}

type pick struct {
	t   tenant.Tenant
	why string
}

// pickSample chooses from all (in listing order): canaries first (the
// first canaryCount listed, or those matching canaryGlobs), so the runner
// still starts with them, then the n largest by StorageBytes, then n of
// the rest at random.
func pickSample(all []tenant.Tenant, n, canaryCount int, canaryGlobs []string) []pick {
	var out []pick
	taken := map[string]bool{}
	take := func(t tenant.Tenant, why string) {
		if !taken[t.ID] {
			taken[t.ID] = true
			out = append(out, pick{t, why})
		}
	}
	for i, t := range all {
		if (len(canaryGlobs) > 0 && tenant.MatchAny(canaryGlobs, t.ID, t.Name)) || (len(canaryGlobs) == 0 && i < canaryCount) {
			take(t, "canary")
		}
	}
	bySize := slices.Clone(all)
	slices.SortStableFunc(bySize, func(a, b tenant.Tenant) int { return cmp.Compare(b.StorageBytes, a.StorageBytes) })
	for _, t := range bySize[:min(n, len(bySize))] {
		take(t, "largest")
	}
	var rest []tenant.Tenant
	for _, t := range all {
		if !taken[t.ID] {
			rest = append(rest, t)
		}
	}
	rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	for _, t := range rest[:min(n, len(rest))] {
		take(t, "random")
	}
	return out
}

// sampledAs is why a tenant was rehearsed under rehearse-sample; "" when
// every tenant is.
func (s *sampling) sampledAs(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why[id]
}

func scrubOrKeep(f func(string) string) func(string) string {
	if f == nil {
		return func(s string) string { return s }
	}
	return f
}

// slowFile is one file's time on one tenant.
type slowFile struct {
	tenant string
	f      FileTiming
}

// sortSlowest orders files slowest first.
func sortSlowest(s []slowFile) {
	slices.SortStableFunc(s, func(a, b slowFile) int { return cmp.Compare(b.f.Seconds, a.f.Seconds) })
}

// failureOf is the file a failed tenant stopped at ("-" when none was
// reached) and why.
func failureOf(res fleet.Result) (file, why string) {
	file = "-"
	if d, _ := res.Detail.(*RehearsalDetail); d != nil && d.Detail != nil && d.FailedFile != "" {
		file = d.FailedFile
	}
	why = res.Reason
	if res.Err != nil {
		why = res.Err.Error()
	}
	return file, why
}

// classify sorts the results: failing are the tenants that did not pass
// (the migration failed on the branch, or the rehearsal itself could not
// be done: no branch, a cancelled run), wouldFail counts the first kind,
// rehearsed are those that got a branch.
func classify(results []fleet.Result) (failing []fleet.Result, wouldFail int, rehearsed []fleet.Result) {
	for _, res := range results {
		d, _ := res.Detail.(*RehearsalDetail)
		if d != nil && d.WouldFail {
			wouldFail++
		}
		if res.Status == fleet.Failed || res.Status == fleet.Cancelled || (d != nil && d.WouldFail) {
			failing = append(failing, res)
		}
		if d != nil && d.BranchID != "" {
			rehearsed = append(rehearsed, res)
		}
	}
	return failing, wouldFail, rehearsed
}
