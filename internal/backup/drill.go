package backup

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/recovery"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// The restore drill's inputs.
var (
	InputDrillTargetURL = &input.Input{Name: "drill-target-url", Secret: true, Env: "PGFLEET_DRILL_TARGET_URL", Description: "A scratch database (store it as a secret; e.g. a `services: postgres` container of the same job): after the backups, drill-count tenants backed up in this run, chosen at random, are each restored into it exactly as mode: restore does (checksum, one transaction, every table's rows compared with the manifest), the database emptied before each (every non-system schema dropped). A drill that fails fails the run, and that tenant's folder is not pruned (retention runs after the drill). Refused if it is one of this run's databases, or holds tables and was never a drill's scratch database (pgfleet marks it with COMMENT ON DATABASE, so connect as its owner); the drill does not run, and the run fails, if its PostgreSQL is older than the newest server dumped. CLI: also PGFLEET_DRILL_TARGET_URL."}
	InputDrillCount     = &input.Input{Name: "drill-count", Description: "How many of the tenants backed up in this run the drill restores (default 1 when drill-target-url is set; all of them when fewer were backed up)."}
)

// DrillInputs are the drill's inputs, for the mode's list.
func DrillInputs() []*input.Input {
	return []*input.Input{InputDrillTargetURL, InputDrillCount, archive.InputEncryptionIdentity}
}

// The drill's outputs.
var (
	outputDrilled     = input.Output{Name: "drilled", Description: "With drill-target-url: the project ids (database-urls: names) of the tenants whose new backup was restored into drill-target-url, one per line."}
	outputDrillFailed = input.Output{Name: "drill-failed", Description: "With drill-target-url: the project ids (database-urls: names) whose drill failed, one per line; empty when every drilled backup came back with every table's rows, and when the drill was refused as a whole (the run's error says why; the backups are fine). Give it to projects to back those up again."}
)

// drillAppName is the restore program's application_name in a drill.
const drillAppName = "pgfleet-drill"

// drill is a validated restore drill, and what it found.
type drill struct {
	targetURL   string
	target      string // host/db, for people
	count       int
	identities  []age.Identity
	tool        pgtools.Tool // pg_restore or psql, for the backup's format
	targetMajor int
	targetVer   string
	timeout     time.Duration // each drill's, tenant-timeout (and each deferred prune's)
	concurrency int           // deferred prunes at once (the run's concurrency)
	log         func(format string, a ...any)

	ran     bool     // Finish ran (every tenant was reached)
	refused error    // why the whole drill did not run, found in Finish
	drilled []string // ids of the tenants drilled, in drill order
	failed  []string // ids whose drill failed
	// cancelled are the ids whose drill the signal cut short: neither
	// drilled nor failed, their backups were not shown bad.
	cancelled []string
	offered   int // tenants backed up in this run
}

// Drill is one drilled backup, the "drill" field of its tenant's record in
// the JSON report.
type Drill struct {
	Target   string `json:"target"` // host/db of the scratch database
	Object   string `json:"object"`
	Manifest string `json:"manifest"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
	// Cancelled: the run was stopped during this drill, which proves
	// nothing either way.
	Cancelled bool `json:"cancelled,omitempty"`
	recovery.Result
}

// prepareDrill reads the drill's inputs into o.Drill and checks the
// scratch target: that it is none of the fleet's static tenants (before
// any tenant is touched), that the backups can be decrypted, that the
// restore program is there, and that the target answers. Bad input is
// recorded in env.Inputs; the target's version is compared with the
// tenants' servers after the backups, when they are known.
func prepareDrill(ctx context.Context, env mode.Env, o *Options) error {
	in := env.Inputs
	targetURL, ok := recovery.TargetURL(in, InputDrillTargetURL, env.Secret)
	if targetURL == "" {
		if in.IsSet(InputDrillCount) {
			in.Bad(InputDrillCount, "set without drill-target-url: give the scratch database the drill restores into, or remove drill-count")
		}
		if in.IsSet(archive.InputEncryptionIdentity) && env.Warn != nil {
			// A warning, not a refusal: PGFLEET_ENCRYPTION_IDENTITY may be
			// in a shell's environment for restores.
			env.Warn("encryption-identity is set, but backup reads it only for a restore drill (drill-target-url): ignored; keep the secret key away from jobs that do not decrypt")
		}
		return nil
	}
	d := &drill{targetURL: targetURL, target: tenant.HostDB(targetURL), count: 1, timeout: env.Config.TenantTimeout, concurrency: env.Config.Concurrency, log: env.Log}
	if d.log == nil {
		d.log = func(string, ...any) {}
	}
	if in.IsSet(InputDrillCount) {
		d.count = in.Int(InputDrillCount, 1, 100000, "tenants")
	}
	if !ok {
		return nil
	}
	// The drill empties its target: it must be no tenant's database. The
	// static list is known now; Neon's connection strings only once each
	// tenant starts, so Finish checks again before writing.
	for _, u := range env.Config.DatabaseURLs {
		if pgconnect.SameDatabase(targetURL, u.URL) {
			in.Bad(InputDrillTargetURL, "is the database of tenant %s (%s): the drill empties the database it restores into, so it must be a scratch database, not one of the fleet's", u.Name, tenant.HostDB(u.URL))
		}
	}
	if len(o.Recipients) > 0 {
		if !in.IsSet(archive.InputEncryptionIdentity) {
			in.Bad(archive.InputEncryptionIdentity, "required for a restore drill of encrypted backups (encryption-recipient is set): give the secret key of one of the recipients, or remove drill-target-url")
		} else if ids, err := archive.ParseIdentities(in.Raw(archive.InputEncryptionIdentity)); err != nil {
			in.Bad(archive.InputEncryptionIdentity, "%v", err)
		} else if !archive.DecryptsFor(ids, o.RecipientKeys) {
			in.Bad(archive.InputEncryptionIdentity, "is the secret key of none of encryption-recipient's keys: the drill could not decrypt the backups")
		} else {
			d.identities = ids
		}
	} else if in.IsSet(archive.InputEncryptionIdentity) && env.Warn != nil {
		env.Warn("encryption-identity is set, but encryption-recipient is not, so the backups are not encrypted: the identity is ignored")
	}
	if o.PgDump.Path != "" {
		tool, err := recovery.FindTool(ctx, o.PgDump, o.Format)
		if err != nil {
			in.Bad(pgtools.InputPgDumpPath, "the restore drill: %v", err)
		}
		d.tool = tool
	}
	o.Drill = d
	if in.Err() != nil {
		return nil // bad input already: no need to reach the target
	}
	if err := d.probe(ctx); err != nil {
		return &input.Error{Input: InputDrillTargetURL.Name, Problem: err.Error(), Err: err}
	}
	return nil
}

// probe connects to the target and reads its version; a standby, which
// cannot be written, is refused.
func (d *drill) probe(ctx context.Context) error {
	conn, err := pgconnect.Connect(ctx, d.targetURL, pgconnect.Options{AppName: appName, Attempts: 2})
	if err != nil {
		return fmt.Errorf("the scratch database cannot be reached: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var num int
	var standby bool
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, pg_catalog.pg_is_in_recovery()`).Scan(&num, &standby); err != nil {
		return fmt.Errorf("read the scratch database's version: %w", err)
	}
	if standby {
		return errors.New("the scratch database is a standby (read-only): the drill must restore into it")
	}
	d.targetMajor, d.targetVer = num/10000, conn.PgConn().ParameterStatus("server_version")
	// The second safety, beside "is it a tenant": a database of the fleet
	// this run does not cover (another shard, an excluded project, a host
	// alias SameDatabase cannot see through) holds tables and no marker.
	_, err = recovery.CheckScratch(ctx, conn)
	return err
}

// Finish runs the restore drill once every tenant is backed up, then
// retention, which waited for it (Work defers pruning when a drill is set):
// count of this run's new backups, chosen at random, are restored one after
// the other into the scratch database. A drill that fails fails its tenant
// (the backup made is not proven restorable, and failed-projects then names
// it for a retry), keeps that tenant's older backups, and fails the run:
// Finish's error names each. A drill refused as a whole (the scratch
// database cannot take this run's dumps, or cannot be shown not to be a
// tenant's) is the run's error, not the tenants': their backups are fine,
// and a retry of them would meet the same refusal; nothing is pruned then.
func (j *Job) Finish(ctx context.Context, results []fleet.Result) error {
	d := j.o.Drill
	if d == nil {
		return nil
	}
	d.ran = true
	err := j.drillAll(ctx, results)
	return errors.Join(err, j.pruneAfterDrill(ctx, results))
}

// drillAll chooses the backups to drill and restores each.
func (j *Job) drillAll(ctx context.Context, results []fleet.Result) error {
	d := j.o.Drill
	var offered []int
	newest, newestAt := 0, -1
	for i, r := range results {
		det, _ := r.Detail.(*Detail)
		if r.Status != fleet.Succeeded || det == nil || !det.complete {
			continue
		}
		offered = append(offered, i)
		if m := pgtools.ServerMajor(det.ServerVersion); m > newest {
			newest, newestAt = m, i
		}
	}
	d.offered = len(offered)
	if d.offered == 0 {
		return nil
	}
	if d.refused = j.refusal(ctx, results, newest, newestAt); d.refused != nil {
		d.log("restore drill  not run: %s", report.OneLine(d.refused.Error()))
		return fmt.Errorf("restore drill not run: %w", d.refused)
	}
	rand.Shuffle(len(offered), func(a, b int) { offered[a], offered[b] = offered[b], offered[a] })
	chosen := offered[:min(d.count, len(offered))]
	var names []string
	for _, i := range chosen {
		names = append(names, results[i].Tenant.String())
	}
	d.log("restore drill: %s of the %s backed up, chosen at random, into %s: %s",
		report.Plural(len(chosen), "backup", "backups"), report.Plural(d.offered, "tenant", "tenants"), d.target, strings.Join(names, ", "))
	return j.drillChosen(ctx, results, chosen)
}

// drillChosen restores the chosen backups (indexes into results) one after
// the other, until the run is cancelled.
func (j *Job) drillChosen(ctx context.Context, results []fleet.Result, chosen []int) error {
	d := j.o.Drill
	var failures, notDrilled []string
	for n, i := range chosen {
		r := &results[i]
		if ctx.Err() != nil {
			// The run was stopped: the drills left are not run at all,
			// rather than each failing at once on the cancelled context
			// and naming in drill-failed a backup that was never tried.
			for _, k := range chosen[n:] {
				notDrilled = append(notDrilled, results[k].Tenant.String())
			}
			break
		}
		det := r.Detail.(*Detail)
		dr := &Drill{Target: d.target, Object: det.Object, Manifest: det.Manifest}
		det.Drill = dr
		err := j.drillOne(ctx, r.Tenant, dr)
		if err != nil && ctx.Err() != nil {
			// Cut short by the signal: the backup was not shown bad.
			dr.Cancelled, dr.Error = true, err.Error()
			r.Status, r.Err = fleet.Cancelled, fmt.Errorf("restore drill of the backup %s cut short: the run was cancelled: %w", det.Object, err)
			d.cancelled = append(d.cancelled, r.Tenant.ProjectID())
			d.log("restore drill  cancelled  %s: %s", r.Tenant, det.Object)
			notDrilled = append(notDrilled, r.Tenant.String())
			continue
		}
		d.drilled = append(d.drilled, r.Tenant.ProjectID())
		if err != nil {
			dr.Error = err.Error()
			d.failed = append(d.failed, r.Tenant.ProjectID())
			r.Status = fleet.Failed
			r.Err = fmt.Errorf("restore drill: the backup %s could not be restored into the scratch database %s: %w", det.Object, d.target, err)
			d.log("restore drill  failed     %s: %s: %s", r.Tenant, det.Object, report.OneLine(err.Error()))
			failures = append(failures, fmt.Sprintf("the backup %s of %s: %v", det.Object, r.Tenant, err))
			continue
		}
		dr.OK = true
		d.log("restore drill  matched    %s: %s: %d/%d tables, %s in %.1fs", r.Tenant, det.Object, dr.Matched(), len(dr.Tables), report.Plural(int(dr.RestoredRows), "row", "rows"), dr.Seconds)
	}
	var errs []error
	if len(failures) > 0 {
		errs = append(errs, fmt.Errorf("restore drill: %d of %d backups could not be restored: %s", len(failures), len(d.drilled), strings.Join(failures, "; ")))
	}
	if len(notDrilled) > 0 {
		errs = append(errs, fmt.Errorf("restore drill cancelled: %d of %d chosen backups were drilled; not drilled: %s", len(d.drilled), len(chosen), strings.Join(notDrilled, ", ")))
	}
	return errors.Join(errs...)
}

// refusal is why no drill of this run may go ahead, checked before
// anything is written: the target is a tenant (Neon's URLs are known only
// now) or a tenant's URL is unknown, the target is older than a server
// dumped (a dump restores into its server's major version or a newer one;
// which tenants were chosen must not decide whether the drill can pass), or
// the target now holds tables it was never marked for. An empty target is
// marked as the drill's scratch database here, before its first restore.
func (j *Job) refusal(ctx context.Context, results []fleet.Result, newest, newestAt int) error {
	d := j.o.Drill
	for _, r := range results {
		switch {
		case r.Tenant.URL == "":
			// Its connection string was never resolved (Neon answered
			// with an error): the target cannot be shown not to be it.
			return fmt.Errorf("tenant %s's connection string could not be resolved, so drill-target-url cannot be shown not to be its database; the drill empties its target and never risks a tenant's", r.Tenant)
		case pgconnect.SameDatabase(d.targetURL, r.Tenant.URL):
			return fmt.Errorf("drill-target-url is the database of tenant %s (%s); the drill empties its target, so it never writes into a tenant's database", r.Tenant, tenant.HostDB(r.Tenant.URL))
		}
	}
	if newest > d.targetMajor {
		nd := results[newestAt].Detail.(*Detail)
		return fmt.Errorf("the scratch database runs PostgreSQL %s, older than the newest server dumped in this run (%s, PostgreSQL %s): a dump restores into its server's major version or a newer one; give a drill-target-url of PostgreSQL %d or later", d.targetVer, results[newestAt].Tenant, nd.ServerVersion, newest)
	}
	return claimScratch(ctx, d.targetURL)
}

// claimScratch checks the scratch database again (Prepare did, but the
// backups took a while) and marks it if it is not yet.
func claimScratch(ctx context.Context, url string) error {
	conn, err := pgconnect.Connect(ctx, url, pgconnect.Options{AppName: appName})
	if err != nil {
		return fmt.Errorf("the scratch database cannot be reached: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st, err := recovery.CheckScratch(ctx, conn)
	if err != nil {
		return err
	}
	if !st.Marked {
		return recovery.MarkScratch(ctx, conn)
	}
	return nil
}

// Why a deferred prune did not happen, in the tenant's retention_note.
const (
	notPrunedNotReached = "not pruned: with a restore drill, retention runs after the drill, once every tenant is done, and this run did not get there (cancelled, stopped early, or listing failed)"
	notPrunedDrillFail  = "not pruned: the new backup failed its restore drill, so the older backups are all kept"
	notPrunedRefused    = "not pruned: the restore drill did not run (the run's error says why), so retention did not either"
	notPrunedCancelled  = "not pruned: the run was cancelled before retention ran"
)

// pruneAfterDrill applies retention to every folder Work left for it,
// except a tenant whose new backup failed its drill and every tenant when
// the drill was refused. Prunes run the run's concurrency at once, each
// under tenant-timeout; one that fails fails its tenant, as in Work. Its
// error names the tenants whose retention the signal skipped or cut
// short: their statuses may still say succeeded, so without it a run
// stopped before retention would end as clean as one that pruned.
func (j *Job) pruneAfterDrill(ctx context.Context, results []fleet.Result) error {
	d := j.o.Drill
	var g errgroup.Group
	g.SetLimit(max(d.concurrency, 1))
	var mu sync.Mutex // d.log and skipped
	var skipped []int // indexes in results, named in their order below
	cancelled := func(i int) {
		mu.Lock()
		defer mu.Unlock()
		skipped = append(skipped, i)
	}
	for i := range results {
		r := &results[i]
		det, _ := r.Detail.(*Detail)
		if det == nil || det.pruneStamp == "" {
			continue
		}
		switch {
		case d.refused != nil:
			det.RetentionNote = notPrunedRefused
			continue
		case det.Drill != nil && !det.Drill.OK && r.Status == fleet.Failed:
			det.RetentionNote = notPrunedDrillFail
			continue
		case ctx.Err() != nil: // a drill cut short by the signal too
			det.RetentionNote = notPrunedCancelled
			cancelled(i)
			continue
		case r.Status != fleet.Succeeded:
			continue
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				// The signal came while this prune waited for its turn:
				// it is not started, rather than failing at once.
				det.RetentionNote = notPrunedCancelled
				cancelled(i)
				return nil
			}
			pctx, cancel := context.WithTimeout(ctx, d.timeout)
			defer cancel()
			det.RetentionNote, det.unpruned = "", false
			err := j.prune(pctx, archive.Folder(r.Tenant.Name, r.Tenant.ID), det.pruneStamp, det)
			det.pruneStamp = ""
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				det.notePruneFailed("the run was cancelled while pruning", err)
				r.Status, r.Err = fleet.Cancelled, fmt.Errorf("retention cut short: the run was cancelled: %w", err)
				cancelled(i)
				return nil
			}
			det.notePruneFailed("pruning failed", err)
			r.Status, r.Err = fleet.Failed, pruneFailed(det.Object, err)
			mu.Lock()
			defer mu.Unlock()
			d.log("retention      failed     %s: %s", r.Tenant, report.OneLine(r.Err.Error()))
			return nil // the tenant's failure, not the group's
		})
	}
	g.Wait()
	if len(skipped) == 0 {
		return nil
	}
	slices.Sort(skipped)
	names := make([]string, len(skipped))
	for k, i := range skipped {
		names[k] = results[i].Tenant.String()
	}
	return fmt.Errorf("retention did not run, or did not finish, for %s because the run was cancelled: their folders keep older backups retention would have removed: %s",
		report.Plural(len(skipped), "tenant", "tenants"), strings.Join(names, ", "))
}

// drillOne restores one new backup into the emptied scratch database the
// way mode: restore does: the manifest read back from the store, the dump
// streamed and checked, one transaction, every table's rows compared.
func (j *Job) drillOne(ctx context.Context, t tenant.Tenant, dr *Drill) error {
	d := j.o.Drill
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	m, err := archive.ReadManifest(ctx, j.o.Store, dr.Manifest)
	if err != nil {
		return err
	}
	if m.ProjectID != t.ID || path.Base(m.Object) != path.Base(dr.Object) {
		return fmt.Errorf("the manifest %s names project %q and dump %s, not %q and %s", dr.Manifest, m.ProjectID, path.Base(m.Object), t.ID, path.Base(dr.Object))
	}
	if err := recovery.CanRead(d.tool, m); err != nil {
		return err
	}
	if err := emptyScratch(ctx, d.targetURL); err != nil {
		return err
	}
	b := recovery.Backup{Store: j.o.Store, DumpKey: dr.Object, Manifest: m}
	err = recovery.Restore(ctx, b, d.targetURL, recovery.Options{Tool: d.tool, Identities: d.identities, AppName: drillAppName}, &dr.Result)
	if err != nil && ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s (tenant-timeout): %w", d.timeout, err)
	}
	return err
}

// emptyScratch empties the scratch database and checks nothing is left
// that the restore could collide with.
func emptyScratch(ctx context.Context, url string) error {
	conn, err := pgconnect.Connect(ctx, url, pgconnect.Options{AppName: appName})
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := recovery.EmptyScratch(ctx, conn); err != nil {
		return err
	}
	left, err := recovery.UserObjects(ctx, conn)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("the scratch database still holds %s after it was emptied", strings.Join(left, ", "))
	}
	return nil
}

// drillSection is the summary's "Restore drill" section: one row per
// drilled backup.
func (j *Job) drillSection(results []fleet.Result) (report.Section, bool) {
	d := j.o.Drill
	if d == nil {
		return report.Section{}, false
	}
	sec := report.Section{
		Title:   "Restore drill",
		Columns: []report.Column{{Title: "tenant"}, {Title: "backup"}, {Title: "tables"}, {Title: "rows", Numeric: true}, {Title: "restore time", Numeric: true}, {Title: ""}},
	}
	// A drill that did not run has one row saying so: a section without
	// rows is not written at all.
	notRun := func(note, why string) (report.Section, bool) {
		sec.Note = note
		sec.Rows = [][]string{{"—", "—", "—", "—", "—", "not run: " + why}}
		return sec, true
	}
	switch {
	case !d.ran:
		return notRun(fmt.Sprintf("Not run: the run did not reach every tenant (cancelled, stopped early, or listing failed), so no backup was restored into %s, and retention, which waits for the drill, pruned nothing.", d.target),
			"the run did not reach every tenant")
	case d.offered == 0:
		return notRun(fmt.Sprintf("Not run: no tenant was backed up in this run, so nothing was restored into %s.", d.target), "no tenant was backed up")
	case d.refused != nil:
		return notRun(fmt.Sprintf("Not run: refused before anything was restored into %s, which fails the run; no tenant's status changed (their backups were made), and retention, which waits for the drill, pruned nothing.", d.target),
			d.refused.Error())
	}
	sec.Note = fmt.Sprintf("%d of the %s backed up in this run, chosen at random, restored one after the other into the scratch database %s (emptied before each) as mode: restore does: SHA-256 checked, one transaction, every table's rows compared with the manifest. %d failed",
		len(d.drilled), report.Plural(d.offered, "tenant", "tenants"), d.target, len(d.failed))
	if len(d.failed) > 0 {
		sec.Note += ": each such tenant failed, and kept all its older backups (retention ran after the drill and left its folder alone)"
	}
	if len(d.cancelled) > 0 {
		sec.Note += fmt.Sprintf("; %d cut short when the run was cancelled (neither restored nor failed)", len(d.cancelled))
	}
	sec.Note += "."
	for _, r := range results {
		det, _ := r.Detail.(*Detail)
		if det == nil || det.Drill == nil {
			continue
		}
		dr := det.Drill
		tables, rows, secs, mark := "—", "—", "—", "✅ all rows match"
		if dr.Counted {
			tables = fmt.Sprintf("%d/%d tables", dr.Matched(), len(dr.Tables))
			rows = report.Plural(int(dr.RestoredRows), "row", "rows")
		}
		if dr.Seconds > 0 {
			secs = strconv.FormatFloat(dr.Seconds, 'f', 1, 64) + "s"
		}
		switch {
		case dr.Cancelled:
			mark = "⏹ cancelled: " + dr.Error
		case !dr.OK:
			mark = "❌ " + dr.Error // the summary puts it on one line and cuts it
		}
		sec.Rows = append(sec.Rows, []string{r.Tenant.String(), path.Base(dr.Object), tables, rows, secs, mark})
	}
	return sec, true
}

// drillOutputs are drilled and drill-failed.
func (j *Job) drillOutputs() map[string]string {
	d := j.o.Drill
	if d == nil {
		return map[string]string{outputDrilled.Name: "", outputDrillFailed.Name: ""}
	}
	return map[string]string{outputDrilled.Name: strings.Join(d.drilled, "\n"), outputDrillFailed.Name: strings.Join(d.failed, "\n")}
}
