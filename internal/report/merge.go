package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Part is one job's JSON report, read back: a shard of a matrix, or the
// canary job that ran before it.
type Part struct {
	Name string // how the merged summary names it (the file's base name)
	Run  Run
}

// ReadJSON reads a report WriteJSON wrote back into a Run with the shared
// fields of every tenant. The mode's own fields are not kept: a merged
// summary shows the shared columns only, since no mode's View is at hand.
func ReadJSON(r io.Reader) (Run, error) {
	var doc struct {
		jsonReport
		Tenants []jsonTenant `json:"tenants"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return Run{}, fmt.Errorf("not a pgfleet JSON report: %w", err)
	}
	if doc.Mode == "" {
		return Run{}, errors.New(`not a pgfleet JSON report: no "mode"`)
	}
	run := Run{
		Mode:     doc.Mode,
		Duration: time.Duration(doc.DurationMS) * time.Millisecond,
		DryRun:   doc.DryRun,
		Outcome: fleet.Outcome{
			Cancelled: doc.Cancelled,
			Stopped:   stopReason(doc.Stopped),
			Results:   make([]fleet.Result, 0, len(doc.Tenants)),
		},
	}
	if doc.StartedAt != nil {
		run.Started = *doc.StartedAt
	}
	if doc.SourceError != "" {
		run.SourceErr = errors.New(doc.SourceError)
	}
	for i, t := range doc.Tenants {
		status := fleet.Status(t.Status)
		switch status {
		case fleet.Succeeded, fleet.UpToDate, fleet.Failed, fleet.Skipped, fleet.Cancelled:
		default:
			return Run{}, fmt.Errorf("tenant %d (%s): unknown status %q", i+1, t.ID, t.Status)
		}
		res := fleet.Result{
			Tenant:   tenant.Tenant{ID: t.ID, Name: t.Name},
			Status:   status,
			Reason:   t.Reason,
			Canary:   t.Canary,
			Duration: time.Duration(t.DurationMS) * time.Millisecond,
		}
		if t.Host != "" {
			// Only host and database were kept: enough for tenant.HostDB,
			// which is all the report reads of the URL.
			res.Tenant.URL = "postgres://" + t.Host + "/" + t.Database
		}
		if t.StartedAt != nil {
			res.Started = *t.StartedAt
		}
		if t.Error != "" {
			res.Err = errors.New(t.Error)
		}
		run.Results = append(run.Results, res)
	}
	return run, nil
}

// Merge makes one run of the parts: the jobs of one workflow run that
// together covered the fleet (a canary job and the shards of a matrix). A
// tenant found in several parts (the canary job's tenants, run again by
// their shard, or a report given twice) counts once, with the outcome that
// matters most: failed, then cancelled, succeeded, up to date, skipped.
func Merge(parts []Part) (Run, error) {
	if len(parts) == 0 {
		return Run{}, errors.New("no reports to merge")
	}
	merged := Run{Mode: parts[0].Run.Mode, DryRun: parts[0].Run.DryRun}
	var end time.Time
	var stopped []error
	var sourceErrs []error
	view := &mergeView{parts: parts}
	where := map[string]int{} // tenant key -> index in merged.Results
	for _, p := range parts {
		r := p.Run
		if r.Mode != merged.Mode {
			return Run{}, fmt.Errorf("%s is a %s report, %s a %s report: merge the reports of one mode", parts[0].Name, merged.Mode, p.Name, r.Mode)
		}
		if r.DryRun != merged.DryRun {
			return Run{}, fmt.Errorf("%s and %s: one is a dry run and the other is not", parts[0].Name, p.Name)
		}
		if !r.Started.IsZero() {
			if merged.Started.IsZero() || r.Started.Before(merged.Started) {
				merged.Started = r.Started
			}
			if e := r.Started.Add(r.Duration); e.After(end) {
				end = e
			}
		}
		merged.Cancelled = merged.Cancelled || r.Cancelled
		if r.Stopped != nil {
			stopped = append(stopped, fmt.Errorf("%s: %w", p.Name, r.Stopped))
		}
		if r.SourceErr != nil {
			sourceErrs = append(sourceErrs, fmt.Errorf("%s: %w", p.Name, r.SourceErr))
		}
		for _, res := range r.Results {
			key := res.Tenant.ID + "\x00" + res.Tenant.Name
			i, seen := where[key]
			if !seen {
				where[key] = len(merged.Results)
				res.Detail = &mergedDetail{reports: []string{p.Name}}
				merged.Results = append(merged.Results, res)
				continue
			}
			prev := merged.Results[i]
			d := prev.Detail.(*mergedDetail)
			if len(d.reports) == 1 {
				view.repeated++
			}
			d.reports = append(d.reports, p.Name)
			if outcomeRank(res.Status) < outcomeRank(prev.Status) {
				res.Detail = d
				res.Canary = res.Canary || prev.Canary
				merged.Results[i] = res
			} else {
				merged.Results[i].Canary = prev.Canary || res.Canary
			}
		}
	}
	if !end.IsZero() {
		merged.Duration = end.Sub(merged.Started)
	}
	merged.Stopped = joinStops(stopped)
	merged.SourceErr = errors.Join(sourceErrs...)
	merged.View = view
	return merged, nil
}

// joinStops is the parts' stop reasons on one line ("shard-1: canary failed:
// acme; shard-2: ..."); one reason stays itself, so errors.Is still holds.
func joinStops(stops []error) error {
	switch len(stops) {
	case 0:
		return nil
	case 1:
		return stops[0]
	}
	texts := make([]string, len(stops))
	for i, e := range stops {
		texts[i] = e.Error()
	}
	return errors.New(strings.Join(texts, "; "))
}

// stopReason reads a report's "stopped" back as the error it was written
// from: the sentinel itself for a cancelled run (the summary asks
// errors.Is), the text for the others, whose detail is all the report has.
func stopReason(text string) error {
	switch text {
	case "":
		return nil
	case fleet.ErrCancelled.Error():
		return fleet.ErrCancelled
	}
	return errors.New(text)
}

// outcomeOrder orders a tenant's outcomes in different reports: the first
// is the one the merged summary shows. A failure anywhere stays visible; a
// tenant the canary job migrated and its shard then found up to date reads
// as succeeded; skipped only when no job ran it.
var outcomeOrder = []fleet.Status{fleet.Failed, fleet.Cancelled, fleet.Succeeded, fleet.UpToDate, fleet.Skipped}

func outcomeRank(s fleet.Status) int {
	if i := slices.Index(outcomeOrder, s); i >= 0 {
		return i
	}
	return len(outcomeOrder)
}

// PartName is how a merged summary names a report file: its base name, or
// its folder's name when the base name alone would not tell the reports
// apart: download-artifact puts each artifact in a folder of its name, and
// every shard's report is pgfleet-migrate-report.json.
func PartName(path string, all []string) string {
	base := filepath.Base(path)
	for _, other := range all {
		if other != path && filepath.Base(other) == base {
			return filepath.Base(filepath.Dir(path))
		}
	}
	return base
}

// mergedDetail says which reports held a tenant.
type mergedDetail struct{ reports []string }

func (d *mergedDetail) Cells() []string { return []string{strings.Join(d.reports, ", ")} }

// mergeView is a merged run's View: a column naming each tenant's report,
// and a section with one row per report.
type mergeView struct {
	parts    []Part
	repeated int // tenants found in more than one report
}

func (v *mergeView) Columns() []Column { return []Column{{Title: "report"}} }

func (v *mergeView) Sections([]fleet.Result) []Section {
	sec := Section{
		Title: "Reports",
		Columns: []Column{{Title: "report"}, {Title: "tenants", Numeric: true}, {Title: "succeeded", Numeric: true},
			{Title: "up to date", Numeric: true}, {Title: "failed", Numeric: true}, {Title: "skipped", Numeric: true},
			{Title: "cancelled", Numeric: true}, {Title: "took", Numeric: true}},
	}
	sec.Note = Plural(len(v.parts), "report", "reports") + " merged."
	if v.repeated > 0 {
		sec.Note += " " + Plural(v.repeated, "tenant is", "tenants are") +
			" in more than one report (a canary job's tenants, run again by their shard): each counts once, with the outcome that matters most (failed, cancelled, succeeded, up to date, skipped)."
	}
	for _, p := range v.parts {
		c := fleet.Count(p.Run.Results)
		sec.Rows = append(sec.Rows, []string{p.Name, strconv.Itoa(c.Total), strconv.Itoa(c.Succeeded),
			strconv.Itoa(c.UpToDate), strconv.Itoa(c.Failed), strconv.Itoa(c.Skipped), strconv.Itoa(c.Cancelled), human(p.Run.Duration)})
	}
	return []Section{sec}
}

func (v *mergeView) Outputs([]fleet.Result) map[string]string { return nil }
