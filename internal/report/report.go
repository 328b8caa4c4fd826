// Package report turns a finished run into what people and workflows read:
// the GitHub job-summary Markdown, the action outputs, the JSON report file
// and the exit code. Every string that comes from an error or a tenant passes
// through Run.Scrub before it is written, and a tenant's URL is never written.
package report

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Run is a finished run, as the report sees it.
type Run struct {
	Mode      string // "migrate" (later "backup", "sync-secrets")
	Started   time.Time
	Duration  time.Duration
	Results   []fleet.Result
	DryRun    bool
	Cancelled bool   // the run was interrupted (SIGINT/SIGTERM)
	Stopped   string // why the run stopped starting tenants early, if it did ("canary failed", "max-failures (3) reached", "cancelled")
	SourceErr error  // listing tenants failed part-way (e.g. Neon API down); the run is a failure

	ReportFile string // path of the JSON report, for the note pointing to it

	// Scrub is applied to every string derived from errors and tenant fields
	// before it is written; nil means identity. The caller redacts
	// credentials with it.
	Scrub func(string) string
}

// ExitCode is 0 when every selected tenant succeeded or was already up to
// date, tenant listing did not fail and the run was neither cancelled nor
// stopped early; else 1.
func ExitCode(r Run) int {
	if r.SourceErr != nil || r.Cancelled || r.Stopped != "" {
		return 1
	}
	for _, res := range r.Results {
		if res.Status != fleet.Succeeded && res.Status != fleet.UpToDate {
			return 1
		}
	}
	return 0
}

// Outputs are the action outputs: total, succeeded, failed, skipped,
// up-to-date, cancelled and report-file, plus pending (tenants with pending
// migrations) for dry runs. Counts are decimal strings.
func Outputs(r Run) map[string]string {
	c := fleet.Count(r.Results)
	out := map[string]string{
		"total":       strconv.Itoa(c.Total),
		"succeeded":   strconv.Itoa(c.Succeeded),
		"up-to-date":  strconv.Itoa(c.UpToDate),
		"failed":      strconv.Itoa(c.Failed),
		"skipped":     strconv.Itoa(c.Skipped),
		"cancelled":   strconv.Itoa(c.Cancelled),
		"report-file": scrubber(r.Scrub)(r.ReportFile),
	}
	if r.DryRun {
		out["pending"] = strconv.Itoa(pendingTenants(r.Results))
	}
	return out
}

// pendingTenants counts tenants that have migrations pending.
func pendingTenants(results []fleet.Result) int {
	n := 0
	for _, res := range results {
		if d := migrateDetail(res.Detail); d != nil && len(d.Pending) > 0 {
			n++
		}
	}
	return n
}

// migrateDetail returns the result's migrate detail, or nil when it has none.
func migrateDetail(detail any) *migrate.Detail {
	switch d := detail.(type) {
	case *migrate.Detail:
		return d
	case migrate.Detail:
		return &d
	}
	return nil
}

func scrubber(f func(string) string) func(string) string {
	if f == nil {
		return func(s string) string { return s }
	}
	return f
}

// cleaner scrubs one tenant's strings. Beyond Run.Scrub it removes the
// tenant's own password, in case an error quoted its connection string and
// the caller's Scrub did not know that password.
type cleaner struct {
	scrub func(string) string
}

func (c cleaner) plain(s string) string { return c.scrub(s) }

func (c cleaner) tenant(t tenant.Tenant, s string) string {
	if s == "" {
		return ""
	}
	if p := tenant.Password(t.URL); len(p) >= 4 {
		s = strings.ReplaceAll(s, p, "xxxxx")
		if enc := strings.TrimPrefix(url.UserPassword("", p).String(), ":"); enc != p {
			s = strings.ReplaceAll(s, enc, "xxxxx")
		}
	}
	return c.scrub(s)
}

func (c cleaner) all(t tenant.Tenant, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = c.tenant(t, s)
	}
	return out
}

// errText is why the tenant failed or was cancelled, "" when no error is known.
func errText(res fleet.Result) string {
	if res.Err != nil {
		return res.Err.Error()
	}
	return ""
}

// hostDB splits tenant.HostDB on its first "/".
func hostDB(t tenant.Tenant) (host, db string) {
	host, db, _ = strings.Cut(tenant.HostDB(t.URL), "/")
	return host, db
}
