package report

import (
	"bufio"
	"encoding/json"
	"io"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
)

type jsonReport struct {
	Mode        string     `json:"mode"`
	StartedAt   *time.Time `json:"started_at"`
	DurationMS  int64      `json:"duration_ms"`
	DryRun      bool       `json:"dry_run"`
	Cancelled   bool       `json:"cancelled"`
	Stopped     string     `json:"stopped"`
	SourceError string     `json:"source_error"`
	Counts      jsonCounts `json:"counts"`
	// "tenants" is streamed after these fields.
}

type jsonCounts struct {
	Total     int  `json:"total"`
	Succeeded int  `json:"succeeded"`
	UpToDate  int  `json:"up_to_date"`
	Failed    int  `json:"failed"`
	Skipped   int  `json:"skipped"`
	Cancelled int  `json:"cancelled"`
	Pending   *int `json:"pending,omitempty"` // dry runs: tenants with pending migrations
}

type jsonTenant struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Host       string     `json:"host"`
	Database   string     `json:"database"`
	Status     string     `json:"status"`
	Error      string     `json:"error"`
	Reason     string     `json:"reason"`
	Canary     bool       `json:"canary"`
	Attempts   int        `json:"attempts"`
	StartedAt  *time.Time `json:"started_at"` // null when the tenant never started
	DurationMS int64      `json:"duration_ms"`
	*jsonMigrate
}

// jsonMigrate holds the migrate fields; present on every tenant of a
// migrate run (empty when the tenant never got that far).
type jsonMigrate struct {
	From       string   `json:"from_version"`
	To         string   `json:"to_version"`
	Applied    []string `json:"applied"`
	Pending    []string `json:"pending"`
	FailedFile string   `json:"failed_file"`
}

// WriteJSON writes the JSON report. Tenants are in the order of r.Results and
// are encoded one at a time, so a large fleet needs no large buffer.
func WriteJSON(w io.Writer, r Run) error {
	c := cleaner{scrub: scrubber(r.Scrub)}
	counts := fleet.Count(r.Results)
	head := jsonReport{
		Mode:       c.plain(r.Mode),
		StartedAt:  timeOrNil(r.Started),
		DurationMS: r.Duration.Milliseconds(),
		DryRun:     r.DryRun,
		Cancelled:  r.Cancelled,
		Stopped:    c.plain(r.Stopped),
		Counts: jsonCounts{
			Total: counts.Total, Succeeded: counts.Succeeded, UpToDate: counts.UpToDate,
			Failed: counts.Failed, Skipped: counts.Skipped, Cancelled: counts.Cancelled,
		},
	}
	if r.SourceErr != nil {
		head.SourceError = c.plain(r.SourceErr.Error())
	}
	if r.DryRun {
		n := pendingTenants(r.Results)
		head.Counts.Pending = &n
	}
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}

	bw := bufio.NewWriter(w)
	bw.Write(b[:len(b)-1]) // drop the closing brace: tenants follow
	bw.WriteString(`,"tenants":[`)
	isMigrate := r.Mode == "migrate"
	for i, res := range r.Results {
		b, err := json.Marshal(tenantRecord(c, res, isMigrate))
		if err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
		if _, err := bw.Write(b); err != nil { // bufio's error is sticky: stop at the first
			return err
		}
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

func tenantRecord(c cleaner, res fleet.Result, isMigrate bool) jsonTenant {
	t := res.Tenant
	host, db := hostDB(t)
	rec := jsonTenant{
		ID:         c.tenant(t, t.ID),
		Name:       c.tenant(t, t.Name),
		Host:       c.tenant(t, host),
		Database:   c.tenant(t, db),
		Status:     string(res.Status),
		Error:      c.tenant(t, errText(res)),
		Reason:     c.tenant(t, res.Reason),
		Canary:     res.Canary,
		Attempts:   res.Attempts,
		StartedAt:  timeOrNil(res.Started),
		DurationMS: res.Duration.Milliseconds(),
	}
	d := migrateDetail(res.Detail)
	if d != nil || isMigrate {
		m := &jsonMigrate{Applied: []string{}, Pending: []string{}}
		if d != nil {
			m.From = c.tenant(t, d.From)
			m.To = c.tenant(t, d.To)
			m.Applied = c.all(t, d.Applied)
			m.Pending = c.all(t, d.Pending)
			m.FailedFile = c.tenant(t, d.Failed)
		}
		rec.jsonMigrate = m
	}
	return rec
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
