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
	Attempts int    // how many times the work function was started (connection retries are inside the mode)
	Started  time.Time
	Duration time.Duration
	Detail   any // mode-specific, e.g. *migrate.Detail

	index int // position in Outcome.Results
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
