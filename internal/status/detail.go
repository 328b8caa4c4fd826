package status

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/migrations"
	"github.com/pgfleet/pgfleet/internal/report"
)

// Detail is what status reports about one tenant. Its JSON tags are the
// tenant's status fields in the JSON report.
type Detail struct {
	Version     string       `json:"version,omitempty"`      // highest applied version ("" = none, or not read)
	Pending     []string     `json:"pending,omitempty"`      // files not applied, in dbmate's order
	Gaps        []string     `json:"out_of_order,omitempty"` // pending files below the applied version
	Unknown     []string     `json:"unknown_versions,omitempty"`
	Fingerprint string       `json:"fingerprint,omitempty"` // of the schema's objects
	Drifted     bool         `json:"drifted,omitempty"`
	Reference   string       `json:"reference_fingerprint,omitempty"` // the biggest group's at this version, when drifted
	Drift       []string     `json:"drift,omitempty"`                 // what differs from the reference, object by object
	Unreachable string       `json:"unreachable,omitempty"`           // why the tenant could not be read
	Backups     *BackupState `json:"backups,omitempty"`

	job     *Job
	objects []Object // the schema, for comparing; not in the report
}

// noteworthy: something a person should look at, short of a threshold.
func (d *Detail) noteworthy() bool {
	return d.Unreachable != "" || len(d.Pending) > 0 || len(d.Unknown) > 0 || d.Drifted ||
		(d.Backups != nil && (d.Backups.Stale || d.Backups.Newest == ""))
}

// Cells implements fleet.Detail, in the order of Job.Columns.
func (d *Detail) Cells() []string {
	var cells []string
	if d.job.o.Set != nil {
		switch {
		case d.Unreachable != "":
			cells = append(cells, "unreachable", "", "")
		default:
			cells = append(cells, versionCell(d.Version), d.pendingCell())
			if d.job.o.Drift {
				cells = append(cells, d.schemaCell())
			} else {
				cells = append(cells, "")
			}
		}
	}
	if d.job.o.Store != nil {
		b := d.Backups
		switch {
		case b == nil:
			cells = append(cells, "", "")
		case b.Newest == "":
			cells = append(cells, "none", countsCell(b))
		default:
			age := humanAge(time.Duration(b.AgeSeconds) * time.Second)
			if b.Stale {
				age += " (stale)"
			}
			cells = append(cells, fmt.Sprintf("%s, %s ago, %s", b.NewestTime.Format(archive.StampFormat), age, archive.HumanBytes(b.Bytes)), countsCell(b))
		}
	}
	return cells
}

func (d *Detail) pendingCell() string {
	s := filesCell(d.Pending)
	var notes []string
	if len(d.Gaps) > 0 {
		notes = append(notes, fmt.Sprintf("%d out of order", len(d.Gaps)))
	}
	if len(d.Unknown) > 0 {
		notes = append(notes, fmt.Sprintf("applied without a file: %s", strings.Join(d.Unknown, ", ")))
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

func (d *Detail) schemaCell() string {
	if !d.Drifted {
		return d.Fingerprint
	}
	return fmt.Sprintf("%s drifted: %s", d.Fingerprint, report.Plural(len(d.Drift), "difference", "differences"))
}

func countsCell(b *BackupState) string {
	s := strconv.Itoa(b.Good)
	if b.Incomplete > 0 {
		s += fmt.Sprintf(" (+%d incomplete)", b.Incomplete)
	}
	return s
}

func versionCell(v string) string { return migrations.VersionCell(v) }

func filesCell(files []string) string { return migrations.FilesCell(files) }

// LogLines implements fleet.Logged: the drift, under a tenant failed by it.
func (d *Detail) LogLines() []string { return d.Drift }

func (j *Job) Columns() []report.Column {
	var cols []report.Column
	if j.o.Set != nil {
		cols = append(cols, report.Column{Title: "version"}, report.Column{Title: "pending"}, report.Column{Title: "schema"})
	}
	if j.o.Store != nil {
		cols = append(cols, report.Column{Title: "newest good backup"}, report.Column{Title: "good backups", Numeric: true})
	}
	return cols
}

// Sections: the version histogram with its schema groups, the drifted
// tenants with what differs, and the folders of tenants not in this run.
func (j *Job) Sections(results []fleet.Result) []report.Section {
	j.analyse(results)
	var secs []report.Section
	if j.o.Set != nil {
		secs = append(secs, j.versionSection(results))
		if j.o.Drift {
			if s, ok := j.driftSection(results); ok {
				secs = append(secs, s)
			}
		}
	}
	if j.bucket != nil && j.wholeFleet {
		if dep := j.bucket.departed(); len(dep) > 0 {
			sec := report.Section{
				Title:   "Backup folders of tenants not in the fleet",
				Note:    "No tenant of the fleet owns these folders: tenants that left it (shown only when the run selects the whole fleet).",
				Columns: []report.Column{{Title: "folder"}, {Title: "good backups", Numeric: true}, {Title: "newest"}},
			}
			for _, f := range dep {
				sec.Rows = append(sec.Rows, f[:])
			}
			secs = append(secs, sec)
		}
	}
	return secs
}

func (j *Job) versionSection(results []fleet.Result) report.Section {
	type tally struct{ tenants, schemas int }
	by := map[string]*tally{}
	var versions []string
	unreachable := 0
	for _, r := range results {
		d, _ := r.Detail.(*Detail)
		if d == nil || d.Unreachable != "" || d.Pending == nil {
			unreachable++
			continue
		}
		if by[d.Version] == nil {
			by[d.Version] = &tally{}
			versions = append(versions, d.Version)
		}
		by[d.Version].tenants++
	}
	for _, g := range j.groups {
		by[g.version].schemas++
	}
	sortVersions(versions)
	sec := report.Section{
		Title:   "Schema versions",
		Note:    fmt.Sprintf("Latest file: %s. %d of %d tenants have pending migrations.", j.o.Set.Latest(), count(results, func(d *Detail) bool { return len(d.Pending) > 0 }), len(results)),
		Columns: []report.Column{{Title: "version"}, {Title: "tenants", Numeric: true}},
	}
	if j.o.Drift {
		sec.Columns = append(sec.Columns, report.Column{Title: "schemas", Numeric: true})
	}
	for _, v := range versions {
		row := []string{versionCell(v), strconv.Itoa(by[v].tenants)}
		if j.o.Drift {
			row = append(row, strconv.Itoa(by[v].schemas))
		}
		sec.Rows = append(sec.Rows, row)
	}
	if unreachable > 0 {
		row := []string{"unknown (not read)", strconv.Itoa(unreachable)}
		if j.o.Drift {
			row = append(row, "")
		}
		sec.Rows = append(sec.Rows, row)
	}
	return sec
}

// maxDriftLines bounds the differences shown per tenant in the summary
// (the JSON report has them all), so a badly drifted fleet's summary stays
// within GitHub's size limit.
const maxDriftLines = 10

func (j *Job) driftSection(results []fleet.Result) (report.Section, bool) {
	sec := report.Section{
		Title:   "Schema drift",
		Note:    "Each tenant compared with the biggest group of tenants at its version.",
		Columns: []report.Column{{Title: "tenant"}, {Title: "version"}, {Title: "differences"}},
	}
	for _, r := range results {
		d, _ := r.Detail.(*Detail)
		if d == nil || !d.Drifted {
			continue
		}
		lines := d.Drift
		if len(lines) > maxDriftLines {
			lines = append(lines[:maxDriftLines:maxDriftLines], fmt.Sprintf("and %d more (see the JSON report)", len(d.Drift)-maxDriftLines))
		}
		name := r.Tenant.Name
		if name == "" {
			name = r.Tenant.ID
		}
		sec.Rows = append(sec.Rows, []string{name, versionCell(d.Version), strings.Join(lines, "; ")})
	}
	return sec, len(sec.Rows) > 0
}

// Outputs: pending, drifted, stale-backups, unreachable (up-to-date is the
// shared count: tenants with nothing to report).
func (j *Job) Outputs(results []fleet.Result) map[string]string {
	j.analyse(results)
	return map[string]string{
		"pending":       strconv.Itoa(count(results, func(d *Detail) bool { return len(d.Pending) > 0 })),
		"drifted":       strconv.Itoa(count(results, func(d *Detail) bool { return d.Drifted })),
		"unreachable":   strconv.Itoa(count(results, func(d *Detail) bool { return d.Unreachable != "" })),
		"stale-backups": strconv.Itoa(count(results, func(d *Detail) bool { return d.Backups != nil && d.Backups.Stale })),
	}
}

func count(results []fleet.Result, is func(*Detail) bool) int {
	n := 0
	for _, r := range results {
		if d, _ := r.Detail.(*Detail); d != nil && is(d) {
			n++
		}
	}
	return n
}
