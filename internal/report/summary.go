package report

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pgfleet/pgfleet/internal/fleet"
)

// MaxSummaryBytes is GitHub's cap on one step's job summary.
const MaxSummaryBytes = 1 << 20

// DefaultSummaryBytes is the limit Summary uses when given none: a little
// under MaxSummaryBytes, leaving room for anything else the step writes.
const DefaultSummaryBytes = MaxSummaryBytes - 24<<10

// maxListedRows is how many failed (or skipped) tenants get a row of their
// own in the failures table; more are grouped, by error (or by reason).
const maxListedRows = 20

// maxOpenRows is how long a table may be before it is folded into a
// <details> block, so that the first screen of the summary still reaches
// the failures.
const maxOpenRows = 30

// maxExamples is how many tenants a group of failures names.
const maxExamples = 3

// entry is one result prepared for the summary: every string scrubbed, not
// yet escaped.
type entry struct {
	index  int
	status fleet.Status
	label  string // name, or id when there is none
	id     string
	err    string
	reason string
	kind   string // err (or the lack of one) as the group's key: the tenant's own words replaced
	canary bool
	dur    string
	cells  []string // the mode's columns; nil when the tenant has no detail
}

// Summary renders the job-summary Markdown of a run, at most limit bytes
// (DefaultSummaryBytes when limit <= 0, never more than MaxSummaryBytes).
// Sections come in order of importance (verdict and totals, the mode's own
// sections, failures, every tenant); rows that do not fit are left out and a
// note points to the JSON report.
func Summary(r Run, limit int) string {
	if limit <= 0 {
		limit = DefaultSummaryBytes
	}
	limit = min(limit, MaxSummaryBytes)

	entries := prepare(r)
	counts := fleet.Count(r.Results)

	d := &doc{limit: limit, report: reportRef(r.scrub(r.ReportFile))}
	d.b.WriteString(header(r, counts))
	if d.b.Len() > limit {
		return cutBytes(d.b.String(), limit)
	}

	tenantsNote := d.noteFn("tenants")
	failuresNote := d.noteFn("failed, cancelled or skipped tenants")
	reserveTenants := maxNote(tenantsNote, len(entries))
	var columns []Column
	if r.View != nil {
		columns = r.View.Columns()
		if len(entries) > 0 {
			for _, sec := range r.View.Sections(r.Results) {
				d.section(r, sec, reserveTenants+maxNote(failuresNote, len(entries)))
			}
		}
	}
	d.failures(entries, failuresNote, reserveTenants)
	d.tenants(entries, columns, tenantsNote)
	return d.b.String()
}

func prepare(r Run) []entry {
	entries := make([]entry, len(r.Results))
	for i, res := range r.Results {
		tt := r.tenantText(res)
		e := entry{
			index:  i,
			status: res.Status,
			id:     tt.id,
			label:  tt.name,
			err:    tt.err,
			reason: tt.reason,
			canary: res.Canary,
			dur:    "—",
			cells:  tt.cells,
		}
		if e.label == "" {
			e.label = e.id
		}
		if e.status == fleet.Failed || e.status == fleet.Cancelled {
			e.kind = errorPattern(OneLine(problem(e)), ownWords(res.Tenant, r.scrub))
		}
		if res.Duration > 0 {
			e.dur = human(res.Duration)
		}
		entries[i] = e
	}
	return entries
}

func header(r Run, counts fleet.Counts) string {
	var b strings.Builder
	mode := md(r.scrub(r.Mode))
	if r.DryRun {
		mode += " (dry run)"
	}
	emoji, verdict := verdict(r, counts)
	fmt.Fprintf(&b, "## %s pgfleet %s: %s\n\n", emoji, mode, verdict)

	fmt.Fprintf(&b, "%s · %s succeeded · %s up to date · %s failed · %s skipped · %s cancelled · took %s\n\n",
		Plural(counts.Total, "tenant", "tenants"), thousands(counts.Succeeded), thousands(counts.UpToDate),
		thousands(counts.Failed), thousands(counts.Skipped), thousands(counts.Cancelled), human(r.Duration))

	if r.DryRun {
		fmt.Fprintf(&b, "> **Dry run: nothing was changed.** %s something to do.\n\n", Plural(counts.Succeeded, "tenant has", "tenants have"))
	}
	if r.Cancelled {
		fmt.Fprintf(&b, "> 🛑 **The run was cancelled** (interrupted by a signal): %s while running, %s never started.\n\n",
			Plural(counts.Cancelled, "tenant was stopped", "tenants were stopped"), thousands(counts.Skipped))
	}
	// A cancelled run has its own banner above.
	if r.Stopped != nil && !errors.Is(r.Stopped, fleet.ErrCancelled) {
		fmt.Fprintf(&b, "> ⚠️ **Stopped early: %s.** %s not started.\n\n",
			mdCut(r.scrubErr(r.Stopped), maxErrorRunes), Plural(counts.Skipped, "tenant was", "tenants were"))
	}
	if r.PrepareErr != nil {
		fmt.Fprintf(&b, "> ❌ **Nothing was run:** %s. No tenant was touched.\n\n",
			mdCut(r.scrub(strings.ReplaceAll(r.PrepareErr.Error(), "\n", "; ")), maxErrorRunes))
	}
	if r.FinishErr != nil {
		fmt.Fprintf(&b, "> ❌ **Failed once every tenant was done:** %s.\n\n",
			mdCut(r.scrub(strings.ReplaceAll(r.FinishErr.Error(), "\n", "; ")), maxErrorRunes))
	}
	if r.SourceErr != nil {
		fmt.Fprintf(&b, "> ❌ **Listing tenants failed part-way:** %s. Tenants not listed were not touched: this run did not cover the whole fleet.\n\n",
			mdCut(r.scrub(r.SourceErr.Error()), maxErrorRunes))
	}
	return strings.TrimSuffix(b.String(), "\n") // sections open with a blank line
}

func verdict(r Run, c fleet.Counts) (emoji, text string) {
	if r.OK() {
		switch {
		case c.Total == 0:
			return "⚠️", "no tenants selected"
		case r.DryRun && c.Succeeded > 0:
			return "✅", fmt.Sprintf("%s, %s with something to do", Plural(c.Total, "tenant", "tenants"), thousands(c.Succeeded))
		case c.Succeeded == c.Total:
			return "✅", fmt.Sprintf("%s, all succeeded", Plural(c.Total, "tenant", "tenants"))
		case c.UpToDate == c.Total:
			return "✅", fmt.Sprintf("%s, all up to date", Plural(c.Total, "tenant", "tenants"))
		}
		return "✅", fmt.Sprintf("%s, all succeeded or up to date", Plural(c.Total, "tenant", "tenants"))
	}

	if r.PrepareErr != nil {
		return "❌", "not run"
	}
	var parts []string
	if r.SourceErr != nil {
		parts = append(parts, "listing tenants failed")
	}
	if c.Failed > 0 {
		parts = append(parts, thousands(c.Failed)+" failed")
	}
	if r.FinishErr != nil && c.Failed == 0 {
		// A Finish that failed tenants (a drill) is counted above already.
		parts = append(parts, "finishing the run failed")
	}
	if c.Cancelled > 0 {
		parts = append(parts, thousands(c.Cancelled)+" cancelled")
	} else if r.Cancelled {
		parts = append(parts, "run cancelled")
	}
	if c.Skipped > 0 {
		parts = append(parts, thousands(c.Skipped)+" skipped")
	}
	if len(parts) == 0 {
		parts = append(parts, "not all tenants succeeded")
	}
	switch {
	case r.SourceErr != nil || r.FinishErr != nil || c.Failed > 0:
		emoji = "❌"
	case r.Cancelled || c.Cancelled > 0:
		emoji = "🛑"
	default:
		emoji = "⚠️"
	}
	return emoji, Plural(c.Total, "tenant", "tenants") + ", " + strings.Join(parts, ", ")
}

// doc is Markdown under construction with a byte budget.
type doc struct {
	b      strings.Builder
	limit  int
	report string // how notes refer to the JSON report
}

func (d *doc) fits(n int) bool { return d.b.Len()+n <= d.limit }

func (d *doc) add(s string) bool {
	if !d.fits(len(s)) {
		return false
	}
	d.b.WriteString(s)
	return true
}

// noteFn returns the note for rows of kind left out of a table.
func (d *doc) noteFn(kind string) func(missing, shown int) string {
	return func(missing, shown int) string {
		more := " more "
		if shown == 0 {
			more = " "
		}
		return fmt.Sprintf("\n**%s%s%s not shown:** see the JSON report%s.\n", thousands(missing), more, kind, d.report)
	}
}

// maxNote is the longest note for a table of n rows.
func maxNote(note func(missing, shown int) string, n int) int {
	return max(len(note(n, 0)), len(note(n, 1)))
}

func reportRef(path string) string {
	if path == "" {
		return ""
	}
	return " " + codeSpan(OneLine(path))
}

// codeSpan wraps s in a code span that its own backticks cannot close.
func codeSpan(s string) string {
	run, longest := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// table writes heading, then head (the table's header rows) and as many of
// n rows as fit while keeping room for its own note and reserve bytes for
// later sections. Past maxOpenRows rows the table is folded into a
// <details> block titled fold. Rows left out are counted in the note, after
// the block so it stays in sight. It returns the rows written.
func (d *doc) table(heading, head, fold string, n int, row func(i int) string, note func(missing, shown int) string, reserve int) int {
	if n == 0 {
		return 0
	}
	closing := ""
	if n > maxOpenRows {
		head = "<details><summary>" + md(fold) + "</summary>\n\n" + head
		closing = "\n</details>\n"
	}
	keep := maxNote(note, n) + len(closing) + reserve
	first := row(0)
	if !d.fits(len(heading) + len(head) + len(first) + keep) {
		d.add(note(n, 0))
		return 0
	}
	d.add(heading + head + first)
	shown := n
	for i := 1; i < n; i++ {
		r := row(i)
		if !d.fits(len(r) + keep) {
			shown = i
			break
		}
		d.add(r)
	}
	d.add(closing)
	if shown < n {
		d.add(note(n-shown, shown))
	}
	return shown
}

// section writes one of the mode's own tables.
func (d *doc) section(r Run, sec Section, reserve int) {
	if len(sec.Rows) == 0 {
		return
	}
	heading := "\n### " + md(sec.Title) + "\n\n"
	if sec.Note != "" {
		heading += md(r.scrub(sec.Note)) + "\n\n"
	}
	row := func(i int) string {
		cells := make([]string, len(sec.Columns))
		for j := range cells {
			if j < len(sec.Rows[i]) {
				cells[j] = mdCut(r.scrub(sec.Rows[i][j]), maxErrorRunes)
			}
		}
		return "| " + strings.Join(cells, " | ") + " |\n"
	}
	d.table(heading, tableHead(sec.Columns), Plural(len(sec.Rows), "row", "rows"), len(sec.Rows), row, d.noteFn(strings.ToLower(sec.Title)+" rows"), reserve)
}

// tableHead is a Markdown table's header and alignment rows.
func tableHead(cols []Column) string {
	names := make([]string, len(cols))
	aligns := make([]string, len(cols))
	for i, c := range cols {
		names[i] = md(c.Title)
		aligns[i] = "---"
		if c.Numeric {
			aligns[i] = "--:"
		}
	}
	return "| " + strings.Join(names, " | ") + " |\n|" + strings.Join(aligns, "|") + "|\n"
}

// failures writes the failed and cancelled tenants with their errors, and the
// skipped ones. Up to maxListedRows of a kind get a row each; more failures
// are grouped by error (a row per kind of failure, with its count and a few
// of its tenants), more skipped tenants are counted per reason.
func (d *doc) failures(entries []entry, note func(missing, shown int) string, reserve int) {
	var failed, cancelled, skipped []entry
	for _, e := range entries {
		switch e.status {
		case fleet.Failed:
			failed = append(failed, e)
		case fleet.Cancelled:
			cancelled = append(cancelled, e)
		case fleet.Skipped:
			skipped = append(skipped, e)
		}
	}
	if len(failed)+len(cancelled)+len(skipped) == 0 {
		return
	}
	byName(failed)
	byName(cancelled)
	byName(skipped)
	rows := append(failed, cancelled...)
	grouped := len(rows) > maxListedRows

	heading := "\n### Failures\n\n"
	if len(rows) == 0 {
		heading = "\n### Skipped\n\n"
	}
	if len(skipped) <= maxListedRows && !grouped {
		rows = append(rows, skipped...)
	} else if len(skipped) > 0 {
		line := heading + skippedLine(skipped) + "\n"
		if !d.fits(len(line) + maxNote(note, len(entries)) + reserve) {
			d.add(note(len(rows)+len(skipped), 0))
			return
		}
		d.add(line)
		heading = ""
	}
	if grouped {
		d.failureGroups(heading, rows, note, reserve)
		return
	}
	head := "| tenant | project id | status | error |\n|---|---|---|---|\n"
	row := func(i int) string {
		e := rows[i]
		return fmt.Sprintf("| %s | %s | %s | %s |\n", md(e.label), md(e.id), statusCell(e), mdCut(problem(e), maxErrorRunes))
	}
	d.table(heading, head, "", len(rows), row, note, reserve)
}

// failureGroups writes many failed and cancelled tenants as one row per
// kind of failure, the most common first. When not even one kind fits,
// tenantsNote counts the tenants left out.
func (d *doc) failureGroups(heading string, failures []entry, tenantsNote func(missing, shown int) string, reserve int) {
	groups := groupBy(failures, func(e entry) string { return string(e.status) + ": " + e.kind })
	verb := "failed"
	if slices.ContainsFunc(failures, func(e entry) bool { return e.status == fleet.Cancelled }) {
		verb = "failed or were cancelled"
	}
	order := ""
	if len(groups) > 1 {
		order = ", most common first"
	}
	var used []string
	for _, p := range placeholders {
		if slices.ContainsFunc(groups, func(g group) bool { return strings.Contains(g.members[0].kind, p) }) {
			used = append(used, md(p))
		}
	}
	differs := " The"
	if len(used) > 0 {
		differs = " In the errors, " + strings.Join(used, ", ") + " stand for what differs from tenant to tenant; the"
	}
	heading += fmt.Sprintf("**%s, with %s**%s.%s JSON report%s has each tenant's own error.\n\n",
		Plural(len(failures), "tenant "+verb, "tenants "+verb), Plural(len(groups), "distinct error", "distinct errors"), order, differs, d.report)
	head := "| tenants | status | error | for example |\n|--:|---|---|---|\n"
	row := func(i int) string {
		g := groups[i]
		return fmt.Sprintf("| %s | %s | %s | %s |\n", thousands(len(g.members)), statusCell(entry{status: g.members[0].status}),
			mdCut(g.members[0].kind, maxErrorRunes), examples(g.members))
	}
	note := func(missing, shown int) string {
		if shown == 0 {
			return tenantsNote(len(failures), 0)
		}
		return fmt.Sprintf("\n**%s not shown:** see the JSON report%s.\n", Plural(missing, "more kind of failure", "more kinds of failure"), d.report)
	}
	d.table(heading, head, Plural(len(groups), "distinct error", "distinct errors"), len(groups), row, note, reserve)
}

// examples names the first few tenants of a group and counts the rest.
func examples(members []entry) string {
	var names []string
	for _, e := range members[:min(len(members), maxExamples)] {
		names = append(names, mdCut(e.label, 60))
	}
	s := strings.Join(names, ", ")
	if more := len(members) - len(names); more > 0 {
		s += fmt.Sprintf(" and %s more", thousands(more))
	}
	return s
}

// problem is what the failures table says about a tenant.
func problem(e entry) string {
	switch e.status {
	case fleet.Skipped:
		if e.reason == "" {
			return "not started"
		}
		return "not started: " + e.reason
	case fleet.Cancelled:
		if e.err == "" {
			return "interrupted while running"
		}
	}
	text := e.err
	if text == "" {
		text = "no error recorded"
	}
	return text
}

// skippedLine summarizes many skipped tenants by reason, most common first.
func skippedLine(skipped []entry) string {
	groups := groupBy(skipped, func(e entry) string { return truncate(OneLine(e.reason), 120) })
	const shown = 5
	parts := make([]string, 0, shown+1)
	for i, g := range groups {
		if i == shown {
			parts = append(parts, fmt.Sprintf("%s other reasons", thousands(len(groups)-shown)))
			break
		}
		r := g.key
		if r == "" {
			r = "no reason given"
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", md(r), thousands(len(g.members))))
	}
	return fmt.Sprintf("⏭️ **%s skipped** (never started): %s\n", thousands(len(skipped)), strings.Join(parts, "; "))
}

// tenants writes every tenant: failed first, then cancelled, then the rest,
// each group by name; the mode's columns between status and time.
func (d *doc) tenants(entries []entry, columns []Column, note func(missing, shown int) string) {
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b entry) int {
		return cmp.Or(cmp.Compare(statusRank(a.status), statusRank(b.status)), compareNames(a, b))
	})
	head := append([]Column{{Title: "tenant"}, {Title: "project id"}, {Title: "status"}}, columns...)
	head = append(head, Column{Title: "time", Numeric: true})
	fold := fmt.Sprintf("All %s: failed first, then cancelled, then the rest by name", Plural(len(sorted), "tenant", "tenants"))
	row := func(i int) string {
		e := sorted[i]
		cells := []string{md(e.label), md(e.id), statusCell(e)}
		for j := range columns {
			cell := "—"
			if j < len(e.cells) {
				cell = mdCut(e.cells[j], 200)
			}
			cells = append(cells, cell)
		}
		cells = append(cells, e.dur)
		return "| " + strings.Join(cells, " | ") + " |\n"
	}
	d.table("\n### Tenants\n\n", tableHead(head), fold, len(sorted), row, note, 0)
}

func byName(es []entry) { slices.SortStableFunc(es, compareNames) }

func compareNames(a, b entry) int {
	return cmp.Or(strings.Compare(a.label, b.label), strings.Compare(a.id, b.id), cmp.Compare(a.index, b.index))
}

func statusRank(s fleet.Status) int {
	switch s {
	case fleet.Failed:
		return 0
	case fleet.Cancelled:
		return 1
	}
	return 2
}

func statusCell(e entry) string {
	var s string
	switch e.status {
	case fleet.Succeeded:
		s = "✅ succeeded"
	case fleet.UpToDate:
		s = "☑️ up to date"
	case fleet.Failed:
		s = "❌ failed"
	case fleet.Skipped:
		s = "⏭️ skipped"
	case fleet.Cancelled:
		s = "🛑 cancelled"
	default:
		s = md(string(e.status))
	}
	if e.canary {
		s += " · canary"
	}
	return s
}
