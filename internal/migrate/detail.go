package migrate

import (
	"fmt"
	"strings"

	"github.com/pgfleet/pgfleet/internal/report"
)

// Detail is what migrate reports about one tenant beyond its status. Its
// JSON tags are the tenant's migrate fields in the JSON report.
type Detail struct {
	From        string   `json:"from_version"`           // highest applied version before the run ("" = none)
	To          string   `json:"to_version"`             // highest applied version after the run
	Applied     []string `json:"applied"`                // files applied by this run, in order
	Pending     []string `json:"pending"`                // files still pending (dry run, or left by a failure)
	FailedFile  string   `json:"failed_file,omitempty"`  // the file whose migration failed
	Attempts    int      `json:"attempts,omitempty"`     // sessions opened: more than 1 when a dropped connection was retried
	LockRetries int      `json:"lock_retries,omitempty"` // statements retried after giving up waiting for a lock (lock-timeout)
	RolledBack  []string `json:"rolled_back,omitempty"`  // rollback: files undone by this run, newest first
	DryRun      bool     `json:"-"`
	Rollback    bool     `json:"-"` // Pending lists the files still to roll back
	Target      string   `json:"-"` // rollback-to ("" = none)
	Log         string   `json:"-"` // dbmate's own log lines for this tenant
}

// Cells implements fleet.Detail: from, to (if applied), applied (pending).
func (d *Detail) Cells() []string {
	if d.DryRun {
		return []string{versionCell(d.From), versionCell(d.afterIfApplied()), filesCell(d.Pending)}
	}
	done := d.Applied
	if d.Rollback {
		done = d.RolledBack // the column is "rolled back"
	}
	to := d.To
	if to == "" {
		to = d.From
	}
	applied := filesCell(done)
	if d.LockRetries > 0 {
		applied += fmt.Sprintf(" (%s)", report.Plural(d.LockRetries, "lock retry", "lock retries"))
	}
	return []string{versionCell(d.From), versionCell(to), applied}
}

// LogLines implements fleet.Logged: the apply loop's log for a failed tenant.
func (d *Detail) LogLines() []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(d.Log), "\n") {
		if l != "" {
			out = append(out, "log: "+l)
		}
	}
	if len(d.Pending) > 0 && !d.DryRun {
		still := "still pending"
		if d.Rollback {
			still = "still to roll back"
		}
		out = append([]string{fmt.Sprintf("left at version %s, %d %s (first: %s)", versionCell(d.To), len(d.Pending), still, d.Pending[0])}, out...)
	}
	return out
}

// afterIfApplied is the version a dry run would have left the tenant at.
func (d *Detail) afterIfApplied() string {
	if d.Rollback {
		if len(d.Pending) > 0 {
			return d.Target
		}
		return d.From
	}
	v := d.To
	for _, f := range d.Pending {
		if p := versionOf(f); versionLess(v, p) {
			v = p
		}
	}
	return v
}

// versionOf is the version of a migration file name: its leading digits.
func versionOf(file string) string {
	n := 0
	for n < len(file) && file[n] >= '0' && file[n] <= '9' {
		n++
	}
	return file[:n]
}
