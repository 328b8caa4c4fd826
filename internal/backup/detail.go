package backup

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/report"
)

// Detail is what backup reports about one tenant. Its JSON tags are the
// tenant's backup fields in the JSON report.
type Detail struct {
	Object        string   `json:"object,omitempty"`   // the dump's key (written, or that was being written)
	Manifest      string   `json:"manifest,omitempty"` // set once the backup is complete
	Bytes         int64    `json:"bytes"`              // stored
	DumpBytes     int64    `json:"dump_bytes"`         // pg_dump's output
	SHA256        string   `json:"sha256,omitempty"`
	ServerVersion string   `json:"server_version,omitempty"`
	PgDumpVersion string   `json:"pg_dump_version,omitempty"`
	Tables        int      `json:"tables_counted"`
	Rows          int64    `json:"rows"`
	Seconds       float64  `json:"dump_seconds"`
	Pruned        []string `json:"pruned"`          // stamps of the good backups retention removed
	Debris        []string `json:"debris_removed"`  // keys of incomplete backups removed
	Aborted       []string `json:"uploads_aborted"` // keys of stale pending uploads aborted
	RetentionNote string   `json:"retention_note,omitempty"`
	Drill         *Drill   `json:"drill,omitempty"` // this backup's restore drill, when it was drilled

	// Locked are the backups past retention kept while their lock holds.
	Locked []LockedBackup `json:"locked"`

	complete bool
	// pruneStamp is the new backup's stamp while retention waits for the
	// restore drill (Finish); "" once it ran, or with no drill.
	pruneStamp string
	// unpruned: retention did not run on the folder (RetentionNote says
	// why), so the summary says "not pruned" rather than a count.
	unpruned bool
	// partlyPruned: retention stopped part-way, after removing some of
	// what it meant to (RetentionNote says what and why).
	partlyPruned bool
}

// notePruneFailed records a prune that stopped with err (why: "pruning
// failed", or the run was cancelled): "not pruned" only when it removed
// nothing; otherwise what went before it stopped stays counted, with a note
// saying the folder was only partly pruned.
func (d *Detail) notePruneFailed(why string, err error) {
	var removed []string
	if n := len(d.Pruned); n > 0 {
		removed = append(removed, report.Plural(n, "backup", "backups"))
	}
	if n := len(d.Debris) + len(d.Aborted); n > 0 {
		removed = append(removed, report.Plural(n, "incomplete backup", "incomplete backups"))
	}
	if len(removed) == 0 {
		d.unpruned, d.RetentionNote = true, "not pruned: "+why+" (the tenant's error says why)"
		return
	}
	d.unpruned, d.partlyPruned = false, true
	d.RetentionNote = fmt.Sprintf("partly pruned: %s after removing %s: %s", why, strings.Join(removed, " and "), report.OneLine(err.Error()))
}

// Throughput is pg_dump's output per second through the whole stream.
func (d *Detail) Throughput() float64 {
	if d.Seconds <= 0 {
		return 0
	}
	return float64(d.DumpBytes) / d.Seconds
}

// Cells: size, throughput, object, pruned.
func (d *Detail) Cells() []string {
	size, rate, object, pruned := "—", "—", "—", "—"
	if d.complete {
		size = archive.HumanBytes(d.Bytes)
		if d.DumpBytes > 0 {
			size += fmt.Sprintf(" (of %s)", archive.HumanBytes(d.DumpBytes))
		}
		object = d.Object
		pruned = strconv.Itoa(len(d.Pruned))
		if d.unpruned {
			pruned = "not pruned"
		}
		if d.partlyPruned {
			pruned += " (partly: stopped)"
		}
		if n := len(d.Debris) + len(d.Aborted); n > 0 {
			pruned += fmt.Sprintf(" + %d debris", n)
		}
		if n := len(d.Locked); n > 0 {
			var last time.Time
			for _, l := range d.Locked {
				if l.Until.After(last) {
					last = l.Until
				}
			}
			pruned += fmt.Sprintf(", %d kept: locked until %s", n, last.UTC().Format(time.RFC3339))
		}
	}
	if d.Seconds > 0 && d.DumpBytes > 0 {
		rate = archive.HumanBytes(int64(d.Throughput())) + "/s"
	}
	return []string{size, rate, object, pruned}
}

func (j *Job) Columns() []report.Column {
	return []report.Column{{Title: "size", Numeric: true}, {Title: "throughput", Numeric: true}, {Title: "object"}, {Title: "pruned", Numeric: true}}
}

// Sections: what retention removed, per tenant.
func (j *Job) Sections(results []fleet.Result) []report.Section {
	var total, dumped int64
	backedUp := 0
	var unpruned [][]string // tenants whose folder retention left alone, and why
	sec := report.Section{
		Title:   "Retention",
		Columns: []report.Column{{Title: "tenant"}, {Title: "pruned backups"}, {Title: "incomplete backups removed"}, {Title: "kept while locked"}},
	}
	for _, r := range results {
		d, _ := r.Detail.(*Detail)
		if d == nil || !d.complete {
			continue
		}
		backedUp++
		total += d.Bytes
		dumped += d.DumpBytes
		if d.unpruned || d.partlyPruned {
			unpruned = append(unpruned, []string{r.Tenant.String(), d.RetentionNote, "—", "—"})
		}
		if len(d.Pruned)+len(d.Debris)+len(d.Aborted)+len(d.Locked) == 0 {
			continue
		}
		var debris []string
		for _, k := range d.Debris {
			debris = append(debris, fileName(k))
		}
		for _, k := range d.Aborted {
			debris = append(debris, fileName(k)+" (upload aborted)")
		}
		var locked []string
		for _, l := range d.Locked {
			locked = append(locked, l.String())
		}
		sec.Rows = append(sec.Rows, []string{r.Tenant.String(), list(d.Pruned), list(debris), list(locked)})
	}
	afterDrill := ""
	if j.o.Drill != nil {
		afterDrill = " and, with a restore drill, only after the drill: not at all when the tenant's new backup failed it or the drill did not run"
	}
	ratio := ""
	if total > 0 {
		ratio = fmt.Sprintf(" (compression ratio %.1f)", float64(dumped)/float64(total))
	}
	sec.Note = fmt.Sprintf("%d new backups, %s stored from %s of dumps%s. Each tenant keeps its newest %d good backups and those of the last %d days; "+
		"a tenant's folder is pruned only after its new backup and manifest were written%s, and incomplete backups are removed after a day.",
		backedUp, archive.HumanBytes(total), archive.HumanBytes(dumped), ratio, j.o.KeepLast, j.o.RetentionDays, afterDrill)
	if j.o.Lock.On() {
		sec.Note += fmt.Sprintf(" New dumps and manifests are locked (%s) for %s: a backup past retention whose lock has not passed is kept until it has.", j.o.Lock.Mode, report.Plural(j.o.Lock.Days, "day", "days"))
	}
	switch {
	case len(unpruned) > 0 && len(unpruned) == backedUp && sameNote(unpruned):
		// One reason for the whole run (the drill did not run): one row.
		sec.Rows = append([][]string{{"every tenant", unpruned[0][1], "—", "—"}}, sec.Rows...)
	default:
		sec.Rows = append(unpruned, sec.Rows...)
	}
	if len(sec.Rows) == 0 {
		sec.Rows = append(sec.Rows, []string{"every tenant", "none", "none", "none"})
	}
	secs := []report.Section{sec}
	if dsec, ok := j.drillSection(results); ok {
		secs = append(secs, dsec)
	}
	return secs
}

// Outputs: bytes stored by this run.
func (j *Job) Outputs(results []fleet.Result) map[string]string {
	var total int64
	for _, r := range results {
		if d, _ := r.Detail.(*Detail); d != nil && d.complete {
			total += d.Bytes
		}
	}
	out := j.drillOutputs()
	out["bytes"] = strconv.FormatInt(total, 10)
	return out
}

// sameNote reports whether every row has the first's note.
func sameNote(rows [][]string) bool {
	for _, r := range rows {
		if r[1] != rows[0][1] {
			return false
		}
	}
	return true
}

func list(items []string) string {
	switch {
	case len(items) == 0:
		return "—"
	case len(items) > 5:
		return fmt.Sprintf("%d: %s, …", len(items), strings.Join(items[:5], ", "))
	}
	return strings.Join(items, ", ")
}
