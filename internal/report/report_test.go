package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/redact"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// The report knows no mode, so these tests bring their own: "tidy", a fake
// mode that brings each tenant to a level by doing a few chores. Its detail
// has JSON tags and cells; its view has columns, one section (tenants per
// level) and one output.

// tidyDetail is the fake mode's detail.
type tidyDetail struct {
	Level  string   `json:"level"`
	Done   []string `json:"done"`
	Bytes  int64    `json:"bytes_freed"`
	Note   string   `json:"note,omitempty"`
	Shadow string   `json:"status,omitempty"` // a shared field's name: the report keeps its own
	Log    string   `json:"-"`
}

// Cells: level, done (a count), chores.
func (d *tidyDetail) Cells() []string {
	return []string{d.Level, strconv.Itoa(len(d.Done)), strings.Join(d.Done, ", ")}
}

// tidyView is the fake mode's view.
type tidyView struct {
	note  string            // replaces the Levels note when set
	extra []Section         // more sections after Levels
	out   map[string]string // more outputs
}

func (v tidyView) Columns() []Column {
	return []Column{{Title: "level"}, {Title: "done", Numeric: true}, {Title: "chores"}}
}

// Sections: tenants per level, levels sorted as text, "none" for tenants
// without a detail.
func (v tidyView) Sections(results []fleet.Result) []Section {
	byLevel := map[string]int{}
	none := 0
	for _, r := range results {
		if d, _ := r.Detail.(*tidyDetail); d != nil {
			byLevel[d.Level]++
		} else {
			none++
		}
	}
	sec := Section{
		Title:   "Levels",
		Note:    fmt.Sprintf("%d of %d tenants reached a level.", len(results)-none, len(results)),
		Columns: []Column{{Title: "level"}, {Title: "tenants", Numeric: true}},
	}
	if v.note != "" {
		sec.Note = v.note
	}
	levels := make([]string, 0, len(byLevel))
	for l := range byLevel {
		levels = append(levels, l)
	}
	slices.Sort(levels)
	for _, l := range levels {
		sec.Rows = append(sec.Rows, []string{l, strconv.Itoa(byLevel[l])})
	}
	if none > 0 {
		sec.Rows = append(sec.Rows, []string{"none", strconv.Itoa(none)})
	}
	return append([]Section{sec}, v.extra...)
}

// Outputs: levels (how many distinct levels), plus v.out; and a "failed"
// that the report must not let override its own.
func (v tidyView) Outputs(results []fleet.Result) map[string]string {
	levels := map[string]bool{}
	for _, r := range results {
		if d, _ := r.Detail.(*tidyDetail); d != nil {
			levels[d.Level] = true
		}
	}
	out := map[string]string{"levels": strconv.Itoa(len(levels)), "failed": "999", "report-file": "elsewhere.json"}
	for k, val := range v.out {
		out[k] = val
	}
	return out
}

// textDetail is a detail whose JSON encoding is not an object.
type textDetail string

func (d textDetail) Cells() []string { return []string{string(d)} }

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func tn(id, name string) tenant.Tenant {
	return tenant.Tenant{
		ID:   id,
		Name: name,
		URL:  "postgres://owner:pw-" + id + "@ep-" + id + ".neon.tech/neondb?sslmode=require",
	}
}

// fiveTenants is a tidy run of 5 tenants with 1 failure.
func fiveTenants() Run {
	return Run{
		Mode:       "tidy",
		View:       tidyView{},
		Started:    t0,
		Duration:   72*time.Second + 340*time.Millisecond,
		ReportFile: "pgfleet-report.json",
		Outcome: fleet.Outcome{Results: []fleet.Result{
			{Tenant: tn("proj-a", "acme"), Status: fleet.Succeeded, Started: t0, Duration: 3200 * time.Millisecond, Canary: true,
				Detail: &tidyDetail{Level: "3", Done: []string{"vacuum_orders", "reindex_users"}, Bytes: 1 << 20}},
			{Tenant: tn("proj-b", "bolt"), Status: fleet.UpToDate, Started: t0, Duration: 410 * time.Millisecond,
				Detail: &tidyDetail{Level: "3", Done: []string{}}},
			{Tenant: tn("proj-c", "zeta"), Status: fleet.Failed, Started: t0, Duration: 1500 * time.Millisecond,
				Err:    errors.New("reindex_invoices: ERROR: deadlock detected (SQLSTATE 40P01)"),
				Detail: &tidyDetail{Level: "2", Done: []string{"vacuum_orders"}, Bytes: 9007199254740993, Note: "stopped at reindex_invoices", Log: "private log"}},
			{Tenant: tn("proj-d", "cobalt"), Status: fleet.Succeeded, Started: t0, Duration: 5 * time.Second,
				Detail: &tidyDetail{Level: "3", Done: []string{"a", "b", "c", "d"}}},
			{Tenant: tn("proj-e", "delta"), Status: fleet.Succeeded, Started: t0, Duration: 2 * time.Second,
				Detail: &tidyDetail{Level: "3", Done: []string{"analyze_all"}}},
		}},
	}
}

// section returns the Markdown from the heading "### name" to the next heading.
func section(md, name string) string {
	_, rest, ok := strings.Cut(md, "\n### "+name+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n### "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// tableRows returns the data rows of the first table in s, cells trimmed.
func tableRows(s string) [][]string {
	var rows [][]string
	header := 0
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "|") {
			if header > 0 {
				break
			}
			continue
		}
		header++
		if header <= 2 { // header and delimiter
			continue
		}
		rows = append(rows, splitRow(line))
	}
	return rows
}

// tableHeader returns the header and delimiter lines of the first table in s.
func tableHeader(s string) string {
	i := strings.Index(s, "\n|")
	if i < 0 {
		return ""
	}
	lines := strings.SplitN(s[i+1:], "\n", 3)
	if len(lines) < 2 {
		return ""
	}
	return lines[0] + "\n" + lines[1] + "\n"
}

// splitRow splits a table row on unescaped pipes, as GFM does.
func splitRow(line string) []string {
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line):
			cur.WriteByte(line[i])
			cur.WriteByte(line[i+1])
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	cells = append(cells, strings.TrimSpace(cur.String()))
	return cells[1 : len(cells)-1] // outside the leading and trailing pipes
}

func title(md string) string { return strings.SplitN(md, "\n", 2)[0] }

// summaryTitled renders r's summary and fails the test unless its first
// line is want.
func summaryTitled(t *testing.T, r Run, want string) string {
	t.Helper()
	got := Summary(r, 0)
	if !strings.HasPrefix(got, want+"\n") {
		t.Errorf("title: %q, want %q", title(got), want)
	}
	return got
}

func TestSummaryFiveTenants(t *testing.T) {
	r := fiveTenants()
	got := summaryTitled(t, r, "## ❌ pgfleet tidy: 5 tenants, 1 failed")
	t.Logf("\n%s", got)
	if !strings.Contains(got, "\n5 tenants · 3 succeeded · 1 up to date · 1 failed · 0 skipped · 0 cancelled · took 1m12s\n") {
		t.Errorf("totals line missing")
	}
	for _, absent := range []string{"Dry run", "Stopped early", "cancelled**", "Listing tenants failed", "attempt"} {
		if strings.Contains(got, absent) {
			t.Errorf("unexpected %q", absent)
		}
	}

	// The mode's section: title, note, numeric column right-aligned.
	levels := section(got, "Levels")
	if !strings.HasPrefix(levels, "\n5 of 5 tenants reached a level.\n\n| level | tenants |\n|---|--:|\n") {
		t.Errorf("levels section head:\n%s", levels)
	}
	if rows := tableRows(levels); fmt.Sprint(rows) != "[[2 1] [3 4]]" {
		t.Errorf("levels rows %v", rows)
	}

	failures := tableRows(section(got, "Failures"))
	if len(failures) != 1 || failures[0][0] != "zeta" || failures[0][1] != "proj-c" || failures[0][2] != "❌ failed" ||
		failures[0][3] != `reindex\_invoices: ERROR: deadlock detected (SQLSTATE 40P01)` {
		t.Errorf("failures table: %q", failures)
	}

	tenants := section(got, "Tenants")
	// The mode's columns sit between status and time; time is right-aligned.
	if h := tableHeader(tenants); h != "| tenant | project id | status | level | done | chores | time |\n|---|---|---|---|--:|---|--:|\n" {
		t.Errorf("tenants header %q", h)
	}
	rows := tableRows(tenants)
	var names []string
	for _, row := range rows {
		names = append(names, row[0])
	}
	if strings.Join(names, ",") != "zeta,acme,bolt,cobalt,delta" {
		t.Errorf("tenant order %v, want failed first then by name", names)
	}
	if want := []string{"zeta", "proj-c", "❌ failed", "2", "1", `vacuum\_orders`, "1.5s"}; fmt.Sprint(rows[0]) != fmt.Sprint(want) {
		t.Errorf("failed row\n got %q\nwant %q", rows[0], want)
	}
	if want := []string{"acme", "proj-a", "✅ succeeded · canary", "3", "2", `vacuum\_orders, reindex\_users`, "3.2s"}; fmt.Sprint(rows[1]) != fmt.Sprint(want) {
		t.Errorf("acme row\n got %q\nwant %q", rows[1], want)
	}
	if want := []string{"bolt", "proj-b", "☑️ up to date", "3", "0", "", "410ms"}; fmt.Sprint(rows[2]) != fmt.Sprint(want) {
		t.Errorf("bolt row\n got %q\nwant %q", rows[2], want)
	}
	if rows[3][0] != "cobalt" || rows[3][4] != "4" || rows[3][5] != "a, b, c, d" || rows[3][6] != "5s" {
		t.Errorf("cobalt row %q", rows[3])
	}
	if strings.Contains(got, "not shown") {
		t.Errorf("a small run must not be truncated")
	}
	if !(strings.Index(got, "### Levels") < strings.Index(got, "### Failures") &&
		strings.Index(got, "### Failures") < strings.Index(got, "### Tenants")) {
		t.Errorf("sections out of order")
	}
}

func TestSummaryTenantsOrder(t *testing.T) {
	r := Run{Mode: "tidy", View: tidyView{}, Outcome: fleet.Outcome{Results: []fleet.Result{
		{Tenant: tn("p1", "mike"), Status: fleet.Succeeded},
		{Tenant: tn("p2", "bravo"), Status: fleet.Cancelled},
		{Tenant: tn("p3", "yankee"), Status: fleet.Failed, Err: errors.New("x")},
		{Tenant: tn("p4", "alpha"), Status: fleet.Skipped, Reason: "cancelled"},
		{Tenant: tn("p5", "alpha"), Status: fleet.UpToDate}, // same name: by id
		{Tenant: tn("p6", "xray"), Status: fleet.Failed, Err: errors.New("y")},
		{Tenant: tn("p0", "alpha"), Status: fleet.Cancelled},
	}}}
	got := Summary(r, 0)
	var order []string
	for _, row := range tableRows(section(got, "Tenants")) {
		order = append(order, row[0]+"/"+row[1])
	}
	if want := "xray/p6,yankee/p3,alpha/p0,bravo/p2,alpha/p4,alpha/p5,mike/p1"; strings.Join(order, ",") != want {
		t.Errorf("tenants order\n got %s\nwant %s (failed, cancelled, then the rest, each by name)", strings.Join(order, ","), want)
	}
	order = nil
	for _, row := range tableRows(section(got, "Failures")) {
		order = append(order, row[0]+"/"+row[1]+"/"+row[3])
	}
	if want := "xray/p6/y,yankee/p3/x,alpha/p0/interrupted while running,bravo/p2/interrupted while running,alpha/p4/not started: cancelled"; strings.Join(order, ",") != want {
		t.Errorf("failures order\n got %s\nwant %s", strings.Join(order, ","), want)
	}
	// Tenants without a detail show a dash in each of the mode's columns.
	if rows := tableRows(section(got, "Tenants")); fmt.Sprint(rows[0][3:6]) != "[— — —]" {
		t.Errorf("no-detail cells %q", rows[0])
	}
}

func TestSummaryAllSucceeded(t *testing.T) {
	r := fiveTenants()
	r.Results = append(r.Results[:2:2], r.Results[3:]...)
	got := summaryTitled(t, r, "## ✅ pgfleet tidy: 4 tenants, all succeeded or up to date")
	if strings.Contains(got, "### Failures") {
		t.Errorf("no failures section expected")
	}
	r.Results = r.Results[:1]
	summaryTitled(t, r, "## ✅ pgfleet tidy: 1 tenant, all succeeded")
	r.Results = []fleet.Result{{Tenant: tn("p", "n"), Status: fleet.UpToDate}, {Tenant: tn("q", "m"), Status: fleet.UpToDate}}
	summaryTitled(t, r, "## ✅ pgfleet tidy: 2 tenants, all up to date")
	r.Results = nil
	got = summaryTitled(t, r, "## ⚠️ pgfleet tidy: no tenants selected")
	if strings.Contains(got, "###") {
		t.Errorf("no tenants, no sections:\n%s", got)
	}
}

// A Finish that failed after every tenant succeeded (sync-secrets' prune)
// fails the run: the verdict, a banner with its error, OK and the JSON say so.
func TestSummaryFinishFailed(t *testing.T) {
	r := Run{Mode: "tidy", View: tidyView{}, FinishErr: errors.New("prune stale secrets: 403 Forbidden"),
		Outcome: fleet.Outcome{Results: []fleet.Result{{Tenant: tn("p1", "one"), Status: fleet.Succeeded, Detail: &tidyDetail{Level: "1"}}}}}
	if r.OK() {
		t.Error("OK with a failed Finish")
	}
	got := summaryTitled(t, r, "## ❌ pgfleet tidy: 1 tenant, finishing the run failed")
	if !strings.Contains(got, "> ❌ **Failed once every tenant was done:** prune stale secrets: 403 Forbidden.") {
		t.Errorf("no banner with the error:\n%s", got)
	}
	var b strings.Builder
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"finish_error":"prune stale secrets: 403 Forbidden"`) {
		t.Errorf("JSON lacks finish_error: %s", b.String())
	}
	// A Finish that failed tenants (a restore drill) names them in the verdict.
	r.Results[0].Status = fleet.Failed
	summaryTitled(t, r, "## ❌ pgfleet tidy: 1 tenant, 1 failed")
}

func TestSummaryDryRun(t *testing.T) {
	r := Run{
		Mode: "tidy", View: tidyView{}, DryRun: true, Duration: 850 * time.Millisecond,
		Outcome: fleet.Outcome{Results: []fleet.Result{
			{Tenant: tn("p1", "one"), Status: fleet.Succeeded, Detail: &tidyDetail{Level: "1", Done: []string{"x"}}},
			{Tenant: tn("p2", "two"), Status: fleet.Succeeded, Detail: &tidyDetail{Level: "0", Done: []string{"x", "y"}}},
			{Tenant: tn("p3", "three"), Status: fleet.UpToDate, Detail: &tidyDetail{Level: "2"}},
		}},
	}
	got := summaryTitled(t, r, "## ✅ pgfleet tidy (dry run): 3 tenants, 2 with something to do")
	t.Logf("\n%s", got)
	if !strings.Contains(got, "\n> **Dry run: nothing was changed.** 2 tenants have something to do.\n") {
		t.Errorf("dry-run banner missing")
	}
	if rows := tableRows(section(got, "Tenants")); rows[0][0] != "one" || rows[0][3] != "1" || rows[0][4] != "1" {
		t.Errorf("dry-run row %q", rows[0])
	}
	if !r.OK() {
		t.Errorf("a dry run that found work is not OK")
	}

	r.Results = r.Results[1:]
	got = Summary(r, 0)
	if !strings.HasPrefix(got, "## ✅ pgfleet tidy (dry run): 2 tenants, 1 with something to do\n") ||
		!strings.Contains(got, "> **Dry run: nothing was changed.** 1 tenant has something to do.") {
		t.Errorf("one tenant with work:\n%s", got)
	}
	r.Results = r.Results[1:]
	got = Summary(r, 0)
	if !strings.HasPrefix(got, "## ✅ pgfleet tidy (dry run): 1 tenant, all up to date\n") ||
		!strings.Contains(got, "> **Dry run: nothing was changed.** 0 tenants have something to do.") {
		t.Errorf("nothing to do:\n%s", got)
	}
}

func TestSummaryWarnings(t *testing.T) {
	r := fiveTenants()
	r.Results[1].Status, r.Results[1].Reason, r.Results[1].Detail = fleet.Skipped, "canary failed", nil
	r.Stopped = fleet.ErrCanaryFailed
	got := Summary(r, 0)
	if !strings.Contains(got, "\n> ⚠️ **Stopped early: canary failed.** 1 tenant was not started.\n") {
		t.Errorf("stopped warning missing:\n%s", got)
	}
	if !strings.HasPrefix(got, "## ❌ pgfleet tidy: 5 tenants, 1 failed, 1 skipped\n") {
		t.Errorf("title: %q", title(got))
	}
	if !strings.Contains(section(got, "Levels"), "| none | 1 |") {
		t.Errorf("the view sees every result, those without a detail too")
	}
	failures := tableRows(section(got, "Failures"))
	if len(failures) != 2 || failures[1][0] != "bolt" || failures[1][2] != "⏭️ skipped" || failures[1][3] != "not started: canary failed" {
		t.Errorf("few skipped tenants get rows: %q", failures)
	}
	r.Stopped = fmt.Errorf("%w (1) reached", fleet.ErrMaxFailures)
	r.Results[1].Status = fleet.Skipped
	r.Results = append(r.Results, fleet.Result{Tenant: tn("proj-f", "fox"), Status: fleet.Skipped, Reason: "max-failures (1) reached"})
	if got := Summary(r, 0); !strings.Contains(got, "> ⚠️ **Stopped early: max-failures (1) reached.** 2 tenants were not started.") {
		t.Errorf("stopped warning, plural:\n%s", got)
	}

	r = fiveTenants()
	r.Cancelled, r.Stopped = true, fleet.ErrCancelled
	r.Results[2].Status, r.Results[2].Err = fleet.Cancelled, errors.New("context canceled")
	r.Results[4].Status, r.Results[4].Reason, r.Results[4].Detail = fleet.Skipped, "cancelled", nil
	got = summaryTitled(t, r, "## 🛑 pgfleet tidy: 5 tenants, 1 cancelled, 1 skipped")
	if !strings.Contains(got, "> 🛑 **The run was cancelled** (interrupted by a signal): 1 tenant was stopped while running, 1 never started.") {
		t.Errorf("cancel warning missing:\n%s", got)
	}
	if strings.Contains(got, "Stopped early") {
		t.Errorf("Stopped=cancelled repeats the cancel warning")
	}
	if rows := tableRows(section(got, "Failures")); len(rows) != 2 || rows[0][0] != "zeta" || rows[0][2] != "🛑 cancelled" || rows[0][3] != "context canceled" {
		t.Errorf("cancelled tenant row %q", rows)
	}

	// Cancelled with no tenant in flight.
	r = fiveTenants()
	r.Results[2].Status, r.Results[2].Err = fleet.Succeeded, nil
	r.Cancelled = true
	summaryTitled(t, r, "## 🛑 pgfleet tidy: 5 tenants, run cancelled")

	r = fiveTenants()
	r.Results = r.Results[:2]
	r.SourceErr = errors.New("list projects (page 3): 503 Service Unavailable")
	got = summaryTitled(t, r, "## ❌ pgfleet tidy: 2 tenants, listing tenants failed")
	if !strings.Contains(got, "\n> ❌ **Listing tenants failed part-way:** list projects (page 3): 503 Service Unavailable. Tenants not listed were not touched") {
		t.Errorf("source error warning missing:\n%s", got)
	}
}

func TestSummaryManySkippedSummarized(t *testing.T) {
	r := Run{Mode: "tidy", View: tidyView{}, Outcome: fleet.Outcome{Stopped: fmt.Errorf("%w (3) reached", fleet.ErrMaxFailures)}}
	for i := range 3 {
		r.Results = append(r.Results, fleet.Result{Tenant: tn(fmt.Sprint("f", i), ""), Status: fleet.Failed, Err: errors.New("boom")})
	}
	for i := range 25 {
		reason := "max-failures (3) reached"
		if i < 2 {
			reason = "cancelled"
		}
		r.Results = append(r.Results, fleet.Result{Tenant: tn(fmt.Sprint("s", i), ""), Status: fleet.Skipped, Reason: reason})
	}
	got := section(Summary(r, 0), "Failures")
	if !strings.Contains(got, "⏭️ **25 skipped** (never started): max-failures (3) reached (23); cancelled (2)\n") {
		t.Errorf("skipped summary line missing:\n%s", got)
	}
	rows := tableRows(got)
	if len(rows) != 3 {
		t.Errorf("only failed tenants get rows when many are skipped, got %d", len(rows))
	}
	if rows[0][0] != "f0" || rows[0][1] != "f0" || rows[0][3] != "boom" {
		t.Errorf("a tenant without a name is labelled by id: %q", rows[0])
	}

	// Only skipped tenants, of many reasons: a Skipped heading, the five
	// most common reasons, the rest counted.
	r = Run{Mode: "tidy"}
	for i := range 30 {
		reason := fmt.Sprintf("reason-%d", i%8)
		if i%8 == 7 {
			reason = ""
		}
		r.Results = append(r.Results, fleet.Result{Tenant: tn(fmt.Sprint("s", i), ""), Status: fleet.Skipped, Reason: reason})
	}
	full := Summary(r, 0)
	got = section(full, "Skipped")
	if strings.Contains(full, "### Failures") || !strings.Contains(got,
		"⏭️ **30 skipped** (never started): reason-0 (4); reason-1 (4); reason-2 (4); reason-3 (4); reason-4 (4); 3 other reasons\n") {
		t.Errorf("skipped-only summary:\n%s", full)
	}
	if rows := tableRows(got); len(rows) != 0 {
		t.Errorf("no rows for skipped tenants when many: %q", rows)
	}
}

func TestSummaryEscaping(t *testing.T) {
	evil := "a|b<script>alert(1)</script>\n# heading `code` [x](http://e.vil) & *b* $x$ ~~s~~ _u_"
	wantEvil := "a\\|b&lt;script&gt;alert(1)&lt;/script&gt; # heading \\`code\\` \\[x\\](http://e.vil) &amp; \\*b\\* \\$x\\$ \\~\\~s\\~\\~ \\_u\\_"
	view := tidyView{
		note:  "note: " + evil,
		extra: []Section{{Title: "Evil " + evil, Columns: []Column{{Title: "col " + evil}, {Title: "n", Numeric: true}}, Rows: [][]string{{evil, "1"}}}},
	}
	r := Run{Mode: "tidy", View: view, Outcome: fleet.Outcome{Results: []fleet.Result{{
		Tenant: tenant.Tenant{ID: "id|1", Name: evil},
		Status: fleet.Failed,
		Err:    errors.New("line one\nline two | <img src=x onerror=alert(1)>"),
		Detail: &tidyDetail{Level: evil, Done: []string{"<b>bold</b>", "|pipe|"}},
	}}}}
	got := Summary(r, 0)
	t.Logf("\n%s", got)
	for _, bad := range []string{"<script>", "<img", "<b>", "\n# heading", "a|b", "|pipe|"} {
		if strings.Contains(got, bad) {
			t.Errorf("summary contains raw %q:\n%s", bad, got)
		}
	}
	if regexp.MustCompile("[^\\\\][\\]`[*_~$]").MatchString(got) {
		t.Errorf("summary contains an unescaped link bracket, backtick, emphasis or math:\n%s", got)
	}
	for _, sec := range []string{"Failures", "Tenants"} {
		rows := tableRows(section(got, sec))
		if len(rows) != 1 || len(rows[0]) != 4 && len(rows[0]) != 7 {
			t.Fatalf("%s: a cell escaped its column: %q", sec, rows)
		}
		if rows[0][0] != wantEvil || rows[0][1] != `id\|1` {
			t.Errorf("%s: name cell\n got %q\nwant %q", sec, rows[0][0], wantEvil)
		}
	}
	if rows := tableRows(section(got, "Failures")); rows[0][3] != "line one line two \\| &lt;img src=x onerror=alert(1)&gt;" {
		t.Errorf("error cell %q", rows[0][3])
	}
	if rows := tableRows(section(got, "Tenants")); rows[0][3] != wantEvil || rows[0][5] != "&lt;b&gt;bold&lt;/b&gt;, \\|pipe\\|" {
		t.Errorf("mode cells %q", rows[0])
	}
	// The mode's sections: note, title, column titles and cells.
	if !strings.Contains(section(got, "Levels"), "\nnote: "+wantEvil+"\n") {
		t.Errorf("section note not escaped:\n%s", section(got, "Levels"))
	}
	evilSec := section(got, "Evil "+wantEvil)
	if evilSec == "" {
		t.Fatalf("section title not escaped:\n%s", got)
	}
	if h := tableHeader(evilSec); h != "| col "+wantEvil+" | n |\n|---|--:|\n" {
		t.Errorf("section header %q", h)
	}
	if rows := tableRows(evilSec); len(rows) != 1 || len(rows[0]) != 2 || rows[0][0] != wantEvil {
		t.Errorf("section row %q", rows)
	}

	// The JSON report keeps the text exactly, HTML escaped.
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Tenants []struct {
			Name  string
			Level string
			Done  []string
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Tenants[0].Name != evil || rep.Tenants[0].Level != evil || fmt.Sprint(rep.Tenants[0].Done) != "[<b>bold</b> |pipe|]" {
		t.Errorf("JSON tenant %+v", rep.Tenants[0])
	}
	if strings.Contains(buf.String(), "<script>") || strings.Contains(buf.String(), "<b>") {
		t.Errorf("JSON should escape HTML")
	}
}

func TestSummaryLongTextTruncated(t *testing.T) {
	long := "boom: " + strings.Repeat("é", 1000)
	r := Run{Mode: "tidy", View: tidyView{extra: []Section{{Title: "Long", Columns: []Column{{Title: "text"}}, Rows: [][]string{{long}}}}},
		Outcome: fleet.Outcome{Results: []fleet.Result{{Tenant: tn("p", "n"), Status: fleet.Failed, Err: errors.New(long), Detail: &tidyDetail{Level: long}}}}}
	got := Summary(r, 0)
	cell := tableRows(section(got, "Failures"))[0][3]
	if !strings.HasSuffix(cell, "…") || len([]rune(cell)) != maxErrorRunes {
		t.Errorf("error cell: %d runes, ends %q", len([]rune(cell)), cell[len(cell)-8:])
	}
	if cell := tableRows(section(got, "Long"))[0][0]; !strings.HasSuffix(cell, "…") || len([]rune(cell)) != maxErrorRunes {
		t.Errorf("section cell: %d runes", len([]rune(cell)))
	}
	if cell := tableRows(section(got, "Tenants"))[0][3]; !strings.HasSuffix(cell, "…") || len([]rune(cell)) != 200 {
		t.Errorf("mode cell: %d runes", len([]rune(cell)))
	}
	r.Stopped, r.SourceErr = errors.New(long), errors.New(long)
	got = Summary(r, 0)
	for _, banner := range []string{"**Stopped early: ", "**Listing tenants failed part-way:** "} {
		_, rest, _ := strings.Cut(got, banner)
		text, _, _ := strings.Cut(rest, "…")
		if n := len([]rune(text)) + 1; n != maxErrorRunes {
			t.Errorf("%s: %d runes, want %d", banner, n, maxErrorRunes)
		}
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), long) != 4 { // error, level, stopped, source_error
		t.Errorf("the JSON report keeps the whole text: %d copies", strings.Count(buf.String(), long))
	}
}

const fakePassword = "s3cr3t-Pa55word"

func TestScrubEverywhere(t *testing.T) {
	red := redact.New(nil)
	red.Add(fakePassword)
	r := fiveTenants()
	r.Scrub = red.Scrub
	r.Results[2].Err = errors.New("connect postgres://owner:" + fakePassword + "@ep-x.neon.tech/neondb: password " + fakePassword + " rejected")
	r.Results[0].Reason = "reason with " + fakePassword
	r.Results[1].Tenant.Name = "bolt-" + fakePassword
	// Its own URL, password unknown to the redactor: only Run.Scrub stands
	// between it and the report (there is no report-side cleaner any more),
	// and the redactor removes any URL's password by structure.
	r.Results[3].Err = errors.New("dial: postgres://owner:pw-proj-d@ep-proj-d.neon.tech/neondb failed")
	r.Results[3].Status = fleet.Failed
	r.Results[4].Detail = &tidyDetail{Level: "lvl-" + fakePassword, Done: []string{"chore " + fakePassword}, Note: "note " + fakePassword}
	r.SourceErr = errors.New("neon: key " + fakePassword)
	r.Stopped = errors.New("stopped " + fakePassword)
	r.ReportFile = "/tmp/" + fakePassword + "/report.json"
	r.View = tidyView{note: "note " + fakePassword, out: map[string]string{"secret": "out " + fakePassword}}

	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	outputs := fmt.Sprint(Outputs(r))
	summary := Summary(r, 0)
	for name, text := range map[string]string{"summary": summary, "json": buf.String(), "outputs": outputs} {
		if strings.Contains(text, fakePassword) {
			t.Errorf("%s contains the password", name)
		}
		for _, res := range r.Results {
			if p := tenant.Password(res.Tenant.URL); strings.Contains(text, p) {
				t.Errorf("%s contains tenant %s's password", name, res.Tenant.ID)
			}
			if strings.Contains(text, res.Tenant.URL) {
				t.Errorf("%s contains tenant %s's URL", name, res.Tenant.ID)
			}
		}
	}
	for _, want := range []string{
		"connect postgres://owner:\\*\\*\\*@ep-x.neon.tech/neondb: password \\*\\*\\* rejected",
		"bolt-\\*\\*\\*", "neon: key \\*\\*\\*", "Stopped early: stopped \\*\\*\\*",
		"dial: postgres://owner:\\*\\*\\*@ep-proj-d.neon.tech/neondb failed", // by Run.Scrub, structurally
		"| lvl-\\*\\*\\* | 1 | chore \\*\\*\\* |",                            // the detail's cells
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("scrubbed text %q missing from summary:\n%s", want, summary)
		}
	}
	if levels := section(summary, "Levels"); !strings.HasPrefix(levels, "\nnote \\*\\*\\*\n") || !strings.Contains(levels, "| lvl-\\*\\*\\* | 1 |") {
		t.Errorf("section note and rows not scrubbed:\n%s", levels)
	}
	for _, want := range []string{
		`"source_error":"neon: key ***"`, `"name":"bolt-***"`, `"stopped":"stopped ***"`, `"reason":"reason with ***"`,
		`"error":"dial: postgres://owner:***@ep-proj-d.neon.tech/neondb failed"`,
		`"level":"lvl-***"`, `"done":["chore ***"]`, `"note":"note ***"`, // the detail's fields, nested ones too
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("scrubbed text %s missing from JSON:\n%s", want, buf.String())
		}
	}
	out := Outputs(r)
	if out["secret"] != "out ***" || out["report-file"] != "/tmp/***/report.json" {
		t.Errorf("outputs not scrubbed: %v", out)
	}

	// Every string goes through Run.Scrub: a tenant's password is removed
	// from prose only if the caller's Scrub knows it (the source registers
	// each one), not by the report.
	var seen []string
	r = fiveTenants()
	r.Results[3].Status, r.Results[3].Err = fleet.Failed, errors.New("password pw-proj-d rejected")
	r.Scrub = func(s string) string { seen = append(seen, s); return s }
	if got := Summary(r, 0); !strings.Contains(got, "password pw-proj-d rejected") {
		t.Errorf("the report must not redact on its own: Run.Scrub is the one redaction")
	}
	if !slices.Contains(seen, "password pw-proj-d rejected") || !slices.Contains(seen, "vacuum_orders, reindex_users") || !slices.Contains(seen, "5 of 5 tenants reached a level.") {
		t.Errorf("Run.Scrub did not see the error, the cells and the note: %q", seen)
	}
	red.Add(tenant.Password(r.Results[3].Tenant.URL))
	r.Scrub = red.Scrub
	if got := Summary(r, 0); strings.Contains(got, "pw-proj-d") || !strings.Contains(got, "password \\*\\*\\* rejected") {
		t.Errorf("a registered tenant password must be removed:\n%s", got)
	}
}

func TestWriteJSON(t *testing.T) {
	r := fiveTenants()
	r.Stopped = fmt.Errorf("%w (1) reached", fleet.ErrMaxFailures)
	r.Results = append(r.Results, fleet.Result{Tenant: tenant.Tenant{ID: "proj-f", Name: "fox"}, Status: fleet.Skipped, Reason: "max-failures (1) reached"})
	r.Results[2].Detail.(*tidyDetail).Shadow = "hacked"
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "postgres://") || strings.Contains(buf.String(), "pw-proj") || strings.Contains(buf.String(), `"url"`) {
		t.Fatalf("JSON leaks a URL or password:\n%s", buf.String())
	}
	// Streamed: the head, then one tenant per line.
	if lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"); len(lines) != 8 ||
		!strings.HasSuffix(lines[0], `,"tenants":[`) || lines[7] != "]}" || !strings.HasPrefix(lines[1], `{"id":"proj-a",`) {
		t.Errorf("layout:\n%s", buf.String())
	}
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	dec.UseNumber()
	var rep map[string]any
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, buf.String())
	}
	for key, want := range map[string]any{
		"mode": "tidy", "started_at": "2025-03-04T05:06:07Z", "duration_ms": json.Number("72340"), "dry_run": false,
		"cancelled": false, "stopped": "max-failures (1) reached", "source_error": "",
	} {
		if rep[key] != want {
			t.Errorf("%s = %#v, want %#v", key, rep[key], want)
		}
	}
	if got := fmt.Sprint(rep["counts"]); got != "map[cancelled:0 failed:1 skipped:1 succeeded:3 total:6 up_to_date:1]" {
		t.Errorf("counts %s", got)
	}
	tenants := rep["tenants"].([]any)
	var ids []string
	for _, x := range tenants {
		ids = append(ids, x.(map[string]any)["id"].(string))
	}
	if strings.Join(ids, ",") != "proj-a,proj-b,proj-c,proj-d,proj-e,proj-f" {
		t.Errorf("tenants must keep the order of Results: %v", ids)
	}
	failed := tenants[2].(map[string]any)
	for key, want := range map[string]any{
		"id": "proj-c", "name": "zeta", "host": "ep-proj-c.neon.tech", "database": "neondb",
		"status": "failed", // the detail's "status" does not override the shared one
		"error":  "reindex_invoices: ERROR: deadlock detected (SQLSTATE 40P01)",
		"reason": "", "canary": false, "started_at": "2025-03-04T05:06:07Z", "duration_ms": json.Number("1500"),
		// The detail's own fields, by its own tags; numbers keep their precision.
		"level": "2", "note": "stopped at reindex_invoices", "bytes_freed": json.Number("9007199254740993"),
	} {
		if failed[key] != want {
			t.Errorf("tenant %s = %#v, want %#v", key, failed[key], want)
		}
	}
	if fmt.Sprint(failed["done"]) != "[vacuum_orders]" {
		t.Errorf("done %v", failed["done"])
	}
	if _, ok := failed["Log"]; ok || strings.Contains(buf.String(), "private log") {
		t.Errorf(`a json:"-" field leaked`)
	}
	if len(failed) != 14 || strings.Count(buf.String(), `"status":`) != 6 {
		t.Errorf("failed record has %d keys, want 10 shared + 4 of the detail: %v", len(failed), failed)
	}
	if acme := tenants[0].(map[string]any); len(acme) != 13 || acme["canary"] != true { // note omitted: omitempty
		t.Errorf("acme record %v", acme)
	}
	skipped := tenants[5].(map[string]any)
	if skipped["started_at"] != nil || skipped["reason"] != "max-failures (1) reached" || skipped["host"] != "" || len(skipped) != 10 {
		t.Errorf("skipped tenant (no detail) has only the shared fields: %v", skipped)
	}

	r.DryRun = true
	buf.Reset()
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"dry_run":true`) {
		t.Errorf("dry-run JSON: %.300s", buf.String())
	}

	// A detail whose encoding is not an object is kept under "detail".
	r = Run{Mode: "tidy", Scrub: func(s string) string { return strings.ReplaceAll(s, "pw", "**") }, Outcome: fleet.Outcome{Results: []fleet.Result{
		{Tenant: tn("p1", "one"), Status: fleet.Succeeded, Detail: textDetail("plain pw")},
	}}}
	buf.Reset()
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"duration_ms":0,"detail":"plain **"}`) {
		t.Errorf("non-object detail: %s", buf.String())
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteJSONReportsWriteError(t *testing.T) {
	r := bigRun(2000)
	if err := WriteJSON(&failWriter{n: 10000}, r); err == nil || err.Error() != "disk full" {
		t.Errorf("err = %v", err)
	}
}

func TestOutputs(t *testing.T) {
	r := fiveTenants()
	got := Outputs(r)
	// The mode's own output is merged; its "failed" and "report-file" do
	// not override the shared ones.
	want := map[string]string{"total": "5", "succeeded": "3", "up-to-date": "1", "failed": "1", "skipped": "0", "cancelled": "0",
		"report-file": "pgfleet-report.json", "levels": "2", "failed-projects": "proj-c"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outputs\n got %v\nwant %v", got, want)
	}
	r.View = nil
	delete(want, "levels")
	if got := Outputs(r); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outputs without a view\n got %v\nwant %v", got, want)
	}
}

func TestRunOK(t *testing.T) {
	ok := func() Run {
		r := fiveTenants()
		r.Results[2].Status, r.Results[2].Err = fleet.Succeeded, nil
		return r
	}
	cases := []struct {
		name string
		edit func(*Run)
		want bool
	}{
		{"all succeeded or up to date", func(*Run) {}, true},
		{"no tenants", func(r *Run) { r.Results = nil }, true},
		{"dry run", func(r *Run) { r.DryRun = true }, true},
		{"no view", func(r *Run) { r.View = nil }, true},
		{"one failed", func(r *Run) { r.Results[0].Status = fleet.Failed }, false},
		{"one skipped", func(r *Run) { r.Results[0].Status = fleet.Skipped }, false},
		{"one cancelled", func(r *Run) { r.Results[0].Status = fleet.Cancelled }, false},
		{"run cancelled", func(r *Run) { r.Cancelled = true }, false},
		{"stopped", func(r *Run) { r.Stopped = fleet.ErrCanaryFailed }, false},
		{"source error", func(r *Run) { r.SourceErr = errors.New("503") }, false},
		{"source error, no tenants", func(r *Run) { r.Results, r.SourceErr = nil, errors.New("503") }, false},
		{"unknown status", func(r *Run) { r.Results[0].Status = "" }, false},
	}
	for _, c := range cases {
		r := ok()
		c.edit(&r)
		if got := r.OK(); got != c.want {
			t.Errorf("%s: OK = %v, want %v", c.name, got, c.want)
		}
	}
}

func bigRun(n int) Run {
	r := Run{Mode: "tidy", View: tidyView{}, Duration: 3*time.Hour + 25*time.Minute + 10*time.Second, ReportFile: "out/pgfleet-report.json"}
	for i := range n {
		res := fleet.Result{
			Tenant:   tn(fmt.Sprintf("proj-%05d-shy-river", i), fmt.Sprintf("customer-%05d", i)),
			Status:   fleet.Succeeded,
			Started:  t0,
			Duration: time.Duration(i%97) * 100 * time.Millisecond,
			Detail:   &tidyDetail{Level: "3", Done: []string{"vacuum_orders", "reindex_invoices"}},
		}
		if i%1000 == 7 {
			res.Status = fleet.Failed
			res.Err = fmt.Errorf("reindex_invoices: %s", strings.Repeat("lock timeout ", 40))
			res.Detail = &tidyDetail{Level: "1", Done: []string{}}
		}
		r.Results = append(r.Results, res)
	}
	return r
}

var moreRe = regexp.MustCompile(`\*\*([0-9,]+) (more )?tenants not shown:\*\* see the JSON report ` + "`out/pgfleet-report.json`")

func TestSummarySizeLimit(t *testing.T) {
	const n = 30000
	r := bigRun(n)
	for _, limit := range []int{MaxSummaryBytes, 0, 20000, 3000} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			got := Summary(r, limit)
			max := limit
			if limit == 0 {
				max = DefaultSummaryBytes
			}
			if len(got) > max {
				t.Fatalf("summary is %d bytes, limit %d", len(got), max)
			}
			if !strings.HasPrefix(got, "## ❌ pgfleet tidy: 30,000 tenants, 30 failed\n") ||
				!strings.Contains(got, "\n30,000 tenants · 29,970 succeeded · 0 up to date · 30 failed · 0 skipped · 0 cancelled · took 3h25m\n") {
				t.Errorf("title or totals wrong:\n%.400s", got)
			}
			if rows := tableRows(section(got, "Levels")); fmt.Sprint(rows) != "[[1 30] [3 29970]]" {
				t.Errorf("levels %v", rows)
			}
			m := moreRe.FindStringSubmatch(got)
			if m == nil {
				t.Fatalf("no truncation note:\n%s", got[len(got)-300:])
			}
			if !strings.HasSuffix(got, m[0]+".\n") {
				t.Errorf("the note should end the summary")
			}
			missing, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
			shown := len(tableRows(section(got, "Tenants")))
			if shown+missing != n {
				t.Errorf("%d shown + %d not shown != %d", shown, missing, n)
			}
			// 30 tenants failing the same way are one row, which fits
			// at every one of these limits.
			if failures := tableRows(section(got, "Failures")); len(failures) != 1 || failures[0][0] != "30" {
				t.Errorf("failure groups %q, want one of 30", failures)
			}
			if shown > 0 && !strings.HasPrefix(strings.Join(tableRows(section(got, "Tenants"))[0], "|"), "customer-00007|") {
				t.Errorf("failed tenants come first")
			}
			if limit == MaxSummaryBytes && (shown < 1000 || len(got) < limit-2000) {
				t.Errorf("a 1 MiB summary should be nearly full: %d rows, %d bytes", shown, len(got))
			}
		})
	}

	// Too little room for even one kind of failure: the note counts the
	// failed tenants left out, and the tenants' note still fits.
	if got := Summary(r, 1000); !strings.Contains(got, "\n**30 failed, cancelled or skipped tenants not shown:** see the JSON report `out/pgfleet-report.json`.\n") ||
		!moreRe.MatchString(got) || len(got) > 1000 {
		t.Errorf("failures cut at limit 1000:\n%s", got)
	}

	// A limit over GitHub's cap is held to the cap.
	if got := Summary(r, 10*MaxSummaryBytes); len(got) > MaxSummaryBytes || len(got) < MaxSummaryBytes-2000 {
		t.Errorf("limit above the cap: %d bytes", len(got))
	}
	// A limit too small for anything still holds, and cuts no character in two.
	for _, limit := range []int{4, 5, 40, 41} {
		if got := Summary(r, limit); len(got) > limit || !utf8.ValidString(got) || !strings.HasPrefix("## ❌ pgfleet tidy: 30,000 tenants, 30 failed\n", got) {
			t.Errorf("tiny limit %d: %q", limit, got)
		}
	}

	// A mode's section too long for the budget is cut too, with its own
	// note, and still leaves room for the notes of the tables after it.
	big := Section{Title: "Big", Columns: []Column{{Title: "row"}, {Title: "n", Numeric: true}}}
	for i := range 10000 {
		big.Rows = append(big.Rows, []string{fmt.Sprintf("row-%05d", i), "1"})
	}
	r.View = tidyView{extra: []Section{big}}
	got := Summary(r, 20000)
	if len(got) > 20000 {
		t.Fatalf("summary is %d bytes, limit 20000", len(got))
	}
	m := regexp.MustCompile(`\*\*([0-9,]+) more big rows not shown:\*\* see the JSON report ` + "`out/pgfleet-report.json`").FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no note for the cut section:\n%s", got)
	}
	missing, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
	if shown := len(tableRows(section(got, "Big"))); shown+missing != 10000 || shown == 0 {
		t.Errorf("big section: %d shown + %d not shown", shown, missing)
	}
	if !moreRe.MatchString(got) || !strings.Contains(got, "failed, cancelled or skipped tenants not shown") {
		t.Errorf("the later tables' notes must still fit:\n%s", got[len(got)-600:])
	}

	var buf bytes.Buffer
	r.View = tidyView{}
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Counts  map[string]int
		Tenants []json.RawMessage
	}
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Tenants) != n || rep.Counts["total"] != n || rep.Counts["failed"] != 30 {
		t.Errorf("JSON: %d tenants, counts %v", len(rep.Tenants), rep.Counts)
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 300 * time.Microsecond: "<1ms", 850 * time.Millisecond: "850ms", 12345 * time.Millisecond: "12.3s",
		72*time.Second + 400*time.Millisecond: "1m12s", 2*time.Hour + 5*time.Minute + 20*time.Second: "2h5m",
		3 * time.Hour: "3h0m",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCodeSpan(t *testing.T) {
	for in, want := range map[string]string{"a.json": "`a.json`", "a`b": "``a`b``", "`x": "`` `x ``"} {
		if got := codeSpan(in); got != want {
			t.Errorf("codeSpan(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSummaryNoView is a run whose mode was never prepared (or has nothing
// of its own to show): the shared columns only, no sections, and the JSON
// records hold only the shared fields.
func TestSummaryNoView(t *testing.T) {
	r := Run{Mode: "backup", Duration: 3 * time.Second, Outcome: fleet.Outcome{Results: []fleet.Result{
		{Tenant: tn("p2", "beta"), Status: fleet.Succeeded, Duration: time.Second},
		{Tenant: tn("p1", "alpha"), Status: fleet.Succeeded, Duration: 2 * time.Second},
	}}}
	got := Summary(r, 0)
	if !strings.HasPrefix(got, "## ✅ pgfleet backup: 2 tenants, all succeeded\n") || strings.Count(got, "\n### ") != 1 {
		t.Errorf("backup summary:\n%s", got)
	}
	if h := tableHeader(section(got, "Tenants")); h != "| tenant | project id | status | time |\n|---|---|---|--:|\n" {
		t.Errorf("header %q", h)
	}
	if rows := tableRows(section(got, "Tenants")); fmt.Sprint(rows) != "[[alpha p1 ✅ succeeded 2s] [beta p2 ✅ succeeded 1s]]" {
		t.Errorf("rows %q", rows)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "level") {
		t.Errorf("mode fields in a report without details: %s", buf.String())
	}
}

// thousandFailing is a run of 1,000 tenants failing in three ways, each
// error naming the tenant's own id, name, host or database, or a moment.
func thousandFailing() Run {
	r := Run{Mode: "tidy", View: tidyView{}, Started: t0, Duration: 95 * time.Second, ReportFile: "out/pgfleet-report.json"}
	for i := range 1000 {
		t := tn(fmt.Sprintf("proj-%04d", i), fmt.Sprintf("customer-%04d", i))
		var err error
		switch i % 3 {
		case 0:
			err = fmt.Errorf("connect to %s: failed to connect to `user=owner database=neondb`: ep-%s.neon.tech (10.0.%d.%d): dial error: connect: connection refused",
				tenant.HostDB(t.URL), t.ID, i/256, i%256)
		case 1:
			err = fmt.Errorf("connect to %s: FATAL: password authentication failed for user \"owner\" (SQLSTATE 28P01)", tenant.HostDB(t.URL))
		case 2:
			err = fmt.Errorf("reindex_invoices on %s: ERROR: could not obtain lock on relation \"invoices\" at %s (SQLSTATE 55P03)",
				t.Name, t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
		}
		r.Results = append(r.Results, fleet.Result{Tenant: t, Status: fleet.Failed, Err: err, Started: t0, Duration: time.Second,
			Detail: &tidyDetail{Level: "1", Done: []string{}}})
	}
	return r
}

func TestSummaryManyFailuresGroupedByError(t *testing.T) {
	r := thousandFailing()
	got := Summary(r, 0)
	t.Logf("first lines:\n%s", strings.Join(strings.SplitN(got, "\n", 41)[:40], "\n"))

	failures := section(got, "Failures")
	groups := tableRows(failures)
	if len(groups) != 3 {
		t.Fatalf("1,000 failures of 3 kinds: want 3 groups, got %d:\n%s", len(groups), failures)
	}
	total := 0
	for _, g := range groups {
		n, _ := strconv.Atoi(strings.ReplaceAll(g[0], ",", ""))
		total += n
		if g[1] != "❌ failed" {
			t.Errorf("group status %q", g[1])
		}
		if strings.Contains(g[2], "proj-") || strings.Contains(g[2], "customer-") || strings.Contains(g[2], "2025-") {
			t.Errorf("a group's error still names one tenant: %q", g[2])
		}
		if !strings.HasSuffix(g[3], " more") || strings.Count(g[3], ",") != maxExamples-1 {
			t.Errorf("examples %q", g[3])
		}
	}
	if total != 1000 || groups[0][0] != "334" {
		t.Errorf("group sizes %v", groups)
	}
	// The addresses hosts resolved to differ too, and read as one.
	if want := "connect to &lt;host&gt;/&lt;database&gt;: failed to connect to \\`user=&lt;user&gt; database=&lt;database&gt;\\`: &lt;host&gt; (&lt;address&gt;): dial error: connect: connection refused"; groups[0][2] != want {
		t.Errorf("first group's error\n got %q\nwant %q", groups[0][2], want)
	}
	if !strings.HasPrefix(groups[0][3], "customer-0000, customer-0003, customer-0006 and 331 more") {
		t.Errorf("examples are the first by name: %q", groups[0][3])
	}

	// The first screen answers what failed and why: the groups sit within
	// the first 25 lines, and the 1,000-row tenants table is folded away.
	first := strings.Join(strings.SplitN(got, "\n", 26)[:25], "\n")
	for _, g := range groups {
		if !strings.Contains(first, "| "+g[0]+" | ") {
			t.Errorf("group %q not in the first 25 lines:\n%s", g[2], first)
		}
	}
	if !strings.Contains(failures, "**1,000 tenants failed, with 3 distinct errors**, most common first. In the errors, &lt;tenant&gt;, &lt;host&gt;, &lt;database&gt;, &lt;user&gt;, &lt;address&gt;, &lt;time&gt; stand for") {
		t.Errorf("groups' heading:\n%s", failures)
	}

	// Skipped and cancelled tenants beside them: the skipped counted per
	// reason (even when few), the cancelled a group of their own.
	r.Results[1].Status, r.Results[1].Err = fleet.Cancelled, nil
	for i := range 3 {
		r.Results[4+i].Status, r.Results[4+i].Err, r.Results[4+i].Reason = fleet.Skipped, nil, "cancelled"
	}
	mixed := section(Summary(r, 0), "Failures")
	if !strings.Contains(mixed, "⏭️ **3 skipped** (never started): cancelled (3)\n") || !strings.Contains(mixed, "**997 tenants failed or were cancelled, with 4 distinct errors**") ||
		!strings.Contains(mixed, "| 1 | 🛑 cancelled | interrupted while running | customer-0001 |") {
		t.Errorf("failures with cancelled and skipped:\n%s", mixed)
	}

	tenants := section(got, "Tenants")
	if !strings.HasPrefix(tenants, "\n<details><summary>All 1,000 tenants: failed first, then cancelled, then the rest by name</summary>\n\n| tenant |") ||
		!strings.HasSuffix(tenants, "|\n\n</details>\n") {
		t.Errorf("tenants table not folded:\n%.300s\n...\n%s", tenants, tenants[max(0, len(tenants)-200):])
	}
	if rows := tableRows(tenants); len(rows) != 1000 {
		t.Errorf("the folded table keeps every tenant: %d rows", len(rows))
	}
}

// FailureKey sets aside what is a tenant's own, and keeps what tells two
// failures apart.
func TestFailureKey(t *testing.T) {
	fail := func(tn tenant.Tenant, msg string) fleet.Result {
		return fleet.Result{Tenant: tn, Status: fleet.Failed, Err: errors.New(msg)}
	}
	a, b := tn("proj-a1", "acme"), tn("proj-b2", "bolt")
	same := [][2]fleet.Result{
		{fail(a, "connect to ep-proj-a1.neon.tech/neondb: FATAL: role \"owner\" is not permitted"), fail(b, "connect to ep-proj-b2.neon.tech/neondb: FATAL: role \"owner\" is not permitted")},
		{fail(a, "endpoint ep-proj-a1 is disabled"), fail(b, "endpoint ep-proj-b2 is disabled")},
		{fail(a, "tenant acme: backup 20250304T050607Z incomplete since 2025-03-04T05:06:07Z"), fail(b, "tenant bolt: backup 20250305T000000Z incomplete since 2025-03-05T00:00:00.5+01:00")},
		{fail(a, "dial 10.1.2.3:5432: refused"), fail(b, "dial 10.9.8.7:5432: refused")},
		{fail(a, "acme-extra is missing"), fail(b, "bolt-extra is missing")}, // '-' ends a word
	}
	for _, p := range same {
		if ka, kb := FailureKey(p[0]), FailureKey(p[1]); ka != kb {
			t.Errorf("same failure, different keys:\n%s\n%s", ka, kb)
		}
	}
	differ := [][2]fleet.Result{
		{fail(a, "20240101120200_add.sql: ERROR (SQLSTATE 42701)"), fail(b, "20240101120300_add.sql: ERROR (SQLSTATE 42701)")},
		{fail(a, "insert: ERROR (SQLSTATE 23505)"), fail(b, "insert: ERROR (SQLSTATE 23503)")},
		{{Tenant: a, Status: fleet.Failed, Err: errors.New("stopped")}, {Tenant: a, Status: fleet.Cancelled, Err: errors.New("stopped")}},
	}
	for _, p := range differ {
		if ka, kb := FailureKey(p[0]), FailureKey(p[1]); ka == kb {
			t.Errorf("different failures, one key: %s", ka)
		}
	}
	// A name is replaced only as a whole word.
	if k := FailureKey(fail(tn("db", "ac"), "db_backup of account ac: no db")); k != "failed: db_backup of account <tenant>: no <tenant>" {
		t.Errorf("whole words only: %q", k)
	}
}
