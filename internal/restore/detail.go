package restore

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/recovery"
	"github.com/pgfleet/pgfleet/internal/report"
)

// Detail is what restore reports. Its JSON tags are the tenant's restore
// fields in the JSON report.
type Detail struct {
	Object     string    `json:"object"`
	Manifest   string    `json:"manifest"`
	BackupTime time.Time `json:"backup_time"`
	// The restore's own fields (bytes read, sha256, rows expected and
	// restored, every table), flattened into the tenant's record.
	recovery.Result
}

// Cells: backup, size, tables, rows.
func (d *Detail) Cells() []string {
	backup := path.Base(d.Object)
	size, tables, rows := "—", "—", "—"
	if d.Bytes > 0 {
		size = archive.HumanBytes(d.Bytes)
		if d.Verified {
			size += " (sha256 ok)"
		}
	}
	if d.Counted {
		tables = fmt.Sprintf("%d of %d match", d.Matched(), len(d.Tables))
		rows = fmt.Sprintf("%d of %d", d.RestoredRows, d.ExpectedRows)
	}
	return []string{backup, size, tables, rows}
}

func (j *Job) Columns() []report.Column {
	return []report.Column{{Title: "backup"}, {Title: "size", Numeric: true}, {Title: "tables"}, {Title: "rows restored", Numeric: true}}
}

// Sections: every table, rows expected and restored, differences first.
func (j *Job) Sections(results []fleet.Result) []report.Section {
	var secs []report.Section
	for _, r := range results {
		d, _ := r.Detail.(*Detail)
		if d == nil || !d.Counted {
			continue
		}
		checks := slices.Clone(d.Tables)
		slices.SortStableFunc(checks, func(a, b recovery.TableCheck) int {
			switch {
			case a.Match() == b.Match():
				return 0
			case !a.Match():
				return -1
			}
			return 1
		})
		sec := report.Section{
			Title:   "Tables",
			Columns: []report.Column{{Title: "table"}, {Title: "rows expected", Numeric: true}, {Title: "rows restored", Numeric: true}, {Title: ""}},
			Note: fmt.Sprintf("%s restored into %s: %d of %d tables have the rows the manifest counted in the dump's snapshot.",
				path.Base(d.Object), r.Tenant.String(), d.Matched(), len(d.Tables)),
		}
		for _, c := range checks {
			restored, mark := strconv.FormatInt(c.Restored, 10), "✅"
			if c.Restored < 0 {
				restored = "missing"
			}
			if !c.Match() {
				mark = "❌"
			}
			sec.Rows = append(sec.Rows, []string{c.Table, strconv.FormatInt(c.Expected, 10), restored, mark})
		}
		secs = append(secs, sec)
	}
	return secs
}

// Outputs: bytes read, rows restored.
func (j *Job) Outputs(results []fleet.Result) map[string]string {
	var bytes, rows int64
	for _, r := range results {
		if d, _ := r.Detail.(*Detail); d != nil {
			bytes += d.Bytes
			if d.Counted {
				rows += d.RestoredRows
			}
		}
	}
	return map[string]string{"bytes": strconv.FormatInt(bytes, 10), "restored-rows": strconv.FormatInt(rows, 10)}
}
