// Package report turns a finished run into what people and workflows read:
// the GitHub job-summary Markdown, the action outputs, the JSON report file
// and the exit code. It knows no mode: a mode describes its own columns,
// sections and outputs through View, and its per-tenant JSON fields through
// its Detail's struct tags. Every string that comes from an error, a tenant
// or a detail passes through Run.Scrub before it is written.
package report

import (
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// View is how a mode's results read beyond the shared columns and counts.
type View interface {
	// Columns are the mode's columns in the tenants table; each tenant's
	// Detail.Cells fills them.
	Columns() []Column
	// Sections are tables of the mode's own, shown after the totals (e.g.
	// migrate's schema versions).
	Sections(results []fleet.Result) []Section
	// Outputs are the mode's action outputs beyond the shared counts.
	Outputs(results []fleet.Result) map[string]string
}

// Column is one column of a table.
type Column struct {
	Title   string
	Numeric bool // right-aligned
}

// Section is a table of a mode's own in the summary. Cells are plain text;
// the report escapes them.
type Section struct {
	Title   string
	Note    string // a line above the table; "" for none
	Columns []Column
	Rows    [][]string
}

// Run is a finished run, as the report sees it.
type Run struct {
	Mode     string
	View     View // nil when the mode was never prepared
	Started  time.Time
	Duration time.Duration
	// Outcome is the fleet run as it ended: Results, why it stopped early
	// (Stopped), whether it was cancelled by a signal, and whether listing
	// tenants failed part-way (SourceErr: e.g. Neon API down; the run is a
	// failure).
	fleet.Outcome
	DryRun bool
	// PrepareErr is why the run never started: bad input, or an outage
	// met while preparing. No tenant was touched; Results is empty.
	PrepareErr error
	// FinishErr is what the job's Finish, run once every tenant was done,
	// could not do (sync-secrets' prune of stale secrets, a failed restore
	// drill): the run failed even when every tenant succeeded.
	FinishErr error

	ReportFile string // path of the JSON report, as the outputs give it

	// Scrub is applied to every string derived from errors, tenants and
	// details before it is written; nil means identity. The caller redacts
	// credentials with it.
	Scrub func(string) string
}

// OK reports that every selected tenant succeeded or was already up to
// date, tenant listing did not fail and the run was neither cancelled nor
// stopped early, and the job's Finish did what it had to. internal/app
// turns it, with what only app knows (writing the report), into the exit
// status.
func (r Run) OK() bool {
	if r.PrepareErr != nil || r.FinishErr != nil || r.SourceErr != nil || r.Cancelled || r.Stopped != nil {
		return false
	}
	for _, res := range r.Results {
		if res.Status != fleet.Succeeded && res.Status != fleet.UpToDate {
			return false
		}
	}
	return true
}

// Outputs are the action outputs: the shared counts and report-file, plus
// the mode's own. Counts are decimal strings.
func Outputs(r Run) map[string]string {
	c := fleet.Count(r.Results)
	out := map[string]string{
		"total":       strconv.Itoa(c.Total),
		"succeeded":   strconv.Itoa(c.Succeeded),
		"up-to-date":  strconv.Itoa(c.UpToDate),
		"failed":      strconv.Itoa(c.Failed),
		"skipped":     strconv.Itoa(c.Skipped),
		"cancelled":   strconv.Itoa(c.Cancelled),
		"report-file": r.scrub(r.ReportFile),
		// One per line, so a retry can pass it to projects as it is.
		"failed-projects": r.scrub(strings.Join(failedProjects(r.Results), "\n")),
	}
	if r.View != nil {
		for k, v := range r.View.Outputs(r.Results) {
			if _, shared := out[k]; !shared {
				out[k] = r.scrub(v)
			}
		}
	}
	return out
}

// scrubErr is err's text, scrubbed; "" for nil.
func (r Run) scrubErr(err error) string {
	if err == nil {
		return ""
	}
	return r.scrub(err.Error())
}

// failedProjects are the failed tenants' project ids (database-urls: their
// names, which are their ids there), in the order of results.
func failedProjects(results []fleet.Result) []string {
	var ids []string
	for _, res := range results {
		if res.Status != fleet.Failed {
			continue
		}
		ids = append(ids, res.Tenant.ProjectID())
	}
	return ids
}

func (r Run) scrub(s string) string {
	if r.Scrub == nil || s == "" {
		return s
	}
	return r.Scrub(s)
}

// tenantText is one tenant's shared fields, scrubbed: what both the JSON
// report and the summary show.
type tenantText struct {
	id, name, host, database, err, reason string
	cells                                 []string
}

func (r Run) tenantText(res fleet.Result) tenantText {
	t := res.Tenant
	host, db, _ := strings.Cut(tenant.HostDB(t.URL), "/")
	tt := tenantText{
		id:       r.scrub(t.ID),
		name:     r.scrub(t.Name),
		host:     r.scrub(host),
		database: r.scrub(db),
		reason:   r.scrub(res.Reason),
		err:      r.scrubErr(res.Err),
	}
	if res.Detail != nil {
		for _, c := range res.Detail.Cells() {
			tt.cells = append(tt.cells, r.scrub(c))
		}
	}
	return tt
}
