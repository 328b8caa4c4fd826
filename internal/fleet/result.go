// Package fleet runs one function per tenant across the fleet: a concurrency
// cap, per-tenant timeout, canary stage, max-failures stop, progress lines and
// clean cancellation. It knows nothing of migrations, dumps or secrets.
package fleet

import (
	"time"

	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Status is how one tenant's work ended.
type Status string

const (
	Succeeded Status = "succeeded"  // the work changed something and finished
	UpToDate  Status = "up-to-date" // there was nothing to do
	Failed    Status = "failed"     // the work (or resolving the tenant) failed
	Skipped   Status = "skipped"    // never started: canary failed, max-failures reached, or the run was cancelled first
	Cancelled Status = "cancelled"  // was running when the run was cancelled
)

// Result is one tenant's outcome.
type Result struct {
	Tenant   tenant.Tenant
	Status   Status
	Err      error  // why it failed or was cancelled; nil otherwise
	Reason   string // why it was skipped
	Canary   bool   // ran in the canary stage
	Started  time.Time
	Duration time.Duration
	Detail   Detail // what the mode says about this tenant; nil when it never got that far

	index int // position in Outcome.Results
}

// Detail is what a mode reports about one tenant beyond its status. Its
// JSON encoding (the mode's own struct tags) becomes part of the tenant's
// record in the JSON report.
type Detail interface {
	// Cells are the values of the mode's columns in the tenants table, in
	// the order of the mode's Columns; plain text, escaped by the report.
	Cells() []string
}

// Logged is a Detail with lines worth showing under a failed tenant in the
// log (migrate: dbmate's own output).
type Logged interface {
	LogLines() []string
}

// Counts tallies results by status.
type Counts struct {
	Total, Succeeded, UpToDate, Failed, Skipped, Cancelled int
}

// Count tallies the results.
func Count(results []Result) Counts {
	c := Counts{Total: len(results)}
	for _, r := range results {
		switch r.Status {
		case Succeeded:
			c.Succeeded++
		case UpToDate:
			c.UpToDate++
		case Failed:
			c.Failed++
		case Skipped:
			c.Skipped++
		case Cancelled:
			c.Cancelled++
		}
	}
	return c
}
