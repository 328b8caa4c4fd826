package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func tn(id, name string) tenant.Tenant {
	return tenant.Tenant{
		ID:   id,
		Name: name,
		URL:  "postgres://owner:pw-" + id + "@ep-" + id + ".neon.tech/neondb?sslmode=require",
	}
}

// fiveTenants is a migrate run of 5 tenants with 1 failure.
func fiveTenants() Run {
	return Run{
		Mode:       "migrate",
		Started:    t0,
		Duration:   72*time.Second + 340*time.Millisecond,
		ReportFile: "pgfleet-report.json",
		Results: []fleet.Result{
			{Tenant: tn("proj-a", "acme"), Status: fleet.Succeeded, Attempts: 1, Started: t0, Duration: 3200 * time.Millisecond, Canary: true,
				Detail: &migrate.Detail{From: "20240101000000", To: "20240301000000", Applied: []string{"20240201000000_orders.sql", "20240301000000_invoices.sql"}}},
			{Tenant: tn("proj-b", "bolt"), Status: fleet.UpToDate, Attempts: 1, Started: t0, Duration: 410 * time.Millisecond,
				Detail: &migrate.Detail{From: "20240301000000", To: "20240301000000"}},
			{Tenant: tn("proj-c", "zeta"), Status: fleet.Failed, Attempts: 2, Started: t0, Duration: 1500 * time.Millisecond,
				Err: errors.New("apply 20240301000000_invoices.sql: ERROR: column \"total\" does not exist (SQLSTATE 42703)"),
				Detail: &migrate.Detail{From: "20240101000000", To: "20240201000000", Applied: []string{"20240201000000_orders.sql"},
					Pending: []string{"20240301000000_invoices.sql"}, Failed: "20240301000000_invoices.sql"}},
			{Tenant: tn("proj-d", "cobalt"), Status: fleet.Succeeded, Attempts: 1, Started: t0, Duration: 5 * time.Second,
				Detail: &migrate.Detail{From: "", To: "20240301000000", Applied: []string{"20240101000000_init.sql", "20240201000000_orders.sql", "20240301000000_invoices.sql"}}},
			{Tenant: tn("proj-e", "delta"), Status: fleet.Succeeded, Attempts: 1, Started: t0, Duration: 2 * time.Second,
				Detail: &migrate.Detail{From: "20240201000000", To: "20240301000000", Applied: []string{"20240301000000_invoices.sql"}}},
		},
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

func TestSummaryFiveTenants(t *testing.T) {
	r := fiveTenants()
	got := Summary(r, 0)
	t.Logf("\n%s", got)

	if !strings.HasPrefix(got, "## ❌ pgfleet migrate: 5 tenants, 1 failed\n") {
		t.Errorf("title: %q", strings.SplitN(got, "\n", 2)[0])
	}
	if !strings.Contains(got, "\n5 tenants · 3 succeeded · 1 up to date · 1 failed · 0 skipped · 0 cancelled · took 1m12s\n") {
		t.Errorf("totals line missing")
	}
	for _, absent := range []string{"Dry run", "Stopped early", "cancelled**", "Listing tenants failed"} {
		if strings.Contains(got, absent) {
			t.Errorf("unexpected %q", absent)
		}
	}

	// Versions: before none 1, 20240101 2, 20240201 1, 20240301 1; after 20240201 1 (the failure), 20240301 4.
	versions := tableRows(section(got, "Schema versions"))
	want := [][]string{
		{"none", "1", "0"},
		{"20240101000000", "2", "0"},
		{"20240201000000", "1", "1"},
		{"20240301000000", "1", "4"},
	}
	if fmt.Sprint(versions) != fmt.Sprint(want) {
		t.Errorf("versions\n got %v\nwant %v", versions, want)
	}

	failures := tableRows(section(got, "Failures"))
	if len(failures) != 1 || failures[0][0] != "zeta" || failures[0][1] != "proj-c" ||
		!strings.Contains(failures[0][3], `column "total" does not exist`) ||
		!strings.Contains(failures[0][3], `20240301000000\_invoices.sql`) {
		t.Errorf("failures table: %q", failures)
	}

	rows := tableRows(section(got, "Tenants"))
	var names []string
	for _, row := range rows {
		names = append(names, row[0])
	}
	if strings.Join(names, ",") != "zeta,acme,bolt,cobalt,delta" {
		t.Errorf("tenant order %v, want failed first then by name", names)
	}
	if want := []string{"zeta", "proj-c", "❌ failed · 2 attempts", "20240101000000", "20240201000000", `1: 20240201000000\_orders.sql`, "1.5s"}; fmt.Sprint(rows[0]) != fmt.Sprint(want) {
		t.Errorf("failed row\n got %q\nwant %q", rows[0], want)
	}
	if rows[1][2] != "✅ succeeded · canary" || rows[1][5] != `2: 20240201000000\_orders.sql, 20240301000000\_invoices.sql` {
		t.Errorf("acme row %q", rows[1])
	}
	if rows[3][3] != "none" || rows[3][5] != `3: 20240101000000\_init.sql, 20240201000000\_orders.sql, 20240301000000\_invoices.sql` {
		t.Errorf("cobalt row %q", rows[3])
	}
	if rows[2][2] != "☑️ up to date" || rows[2][5] != "0" || rows[2][6] != "410ms" {
		t.Errorf("bolt row %q", rows[2])
	}
	if strings.Contains(got, "more tenants not shown") {
		t.Errorf("a small run must not be truncated")
	}
	if strings.Index(got, "### Schema versions") > strings.Index(got, "### Failures") ||
		strings.Index(got, "### Failures") > strings.Index(got, "### Tenants") {
		t.Errorf("sections out of order")
	}
}

func TestSummaryManyFilesShowsCount(t *testing.T) {
	r := fiveTenants()
	r.Results[0].Detail = &migrate.Detail{From: "1", To: "5", Applied: []string{"2_a.sql", "3_b.sql", "4_c.sql", "5_d.sql"}}
	rows := tableRows(section(Summary(r, 0), "Tenants"))
	if rows[1][0] != "acme" || rows[1][5] != "4" {
		t.Errorf("4 files should show as a count: %q", rows[1])
	}
}

func TestSummaryAllSucceeded(t *testing.T) {
	r := fiveTenants()
	r.Results = append(r.Results[:2:2], r.Results[3:]...)
	got := Summary(r, 0)
	if !strings.HasPrefix(got, "## ✅ pgfleet migrate: 4 tenants, all succeeded or up to date\n") {
		t.Errorf("title: %q", strings.SplitN(got, "\n", 2)[0])
	}
	if strings.Contains(got, "### Failures") {
		t.Errorf("no failures section expected")
	}
	r.Results = r.Results[:1]
	if got := Summary(r, 0); !strings.HasPrefix(got, "## ✅ pgfleet migrate: 1 tenant, all succeeded\n") {
		t.Errorf("title: %q", strings.SplitN(got, "\n", 2)[0])
	}
}

func TestSummaryDryRun(t *testing.T) {
	r := Run{
		Mode: "migrate", DryRun: true, Duration: 850 * time.Millisecond,
		Results: []fleet.Result{
			{Tenant: tn("p1", "one"), Status: fleet.Succeeded, Detail: &migrate.Detail{DryRun: true, From: "3", To: "3", Pending: []string{"4_x.sql", "10_y.sql"}}},
			{Tenant: tn("p2", "two"), Status: fleet.Succeeded, Detail: &migrate.Detail{DryRun: true, From: "", Pending: []string{"1_init.sql", "3_z.sql", "4_x.sql", "10_y.sql"}}},
			{Tenant: tn("p3", "three"), Status: fleet.UpToDate, Detail: &migrate.Detail{DryRun: true, From: "10", To: "10"}},
		},
	}
	got := Summary(r, 0)
	t.Logf("\n%s", got)
	if !strings.HasPrefix(got, "## ✅ pgfleet migrate (dry run): 3 tenants, 2 with pending migrations\n") {
		t.Errorf("title: %q", strings.SplitN(got, "\n", 2)[0])
	}
	if !strings.Contains(got, "> **Dry run: nothing was changed.** 2 tenants have pending migrations.") {
		t.Errorf("dry-run banner missing")
	}
	if !strings.Contains(got, "| version | before | after if applied |") {
		t.Errorf("dry-run versions header missing")
	}
	versions := tableRows(section(got, "Schema versions"))
	want := [][]string{{"none", "1", "0"}, {"3", "1", "0"}, {"10", "1", "3"}} // numeric order: 3 before 10
	if fmt.Sprint(versions) != fmt.Sprint(want) {
		t.Errorf("versions\n got %v\nwant %v", versions, want)
	}
	rows := tableRows(section(got, "Tenants"))
	if rows[0][0] != "one" || rows[0][4] != "10" || rows[0][5] != `2: 4\_x.sql, 10\_y.sql` {
		t.Errorf("dry-run row %q", rows[0])
	}
	if out := Outputs(r); out["pending"] != "2" {
		t.Errorf("pending output %q", out["pending"])
	}
	if ExitCode(r) != 0 {
		t.Errorf("dry run that found pending migrations exits 0")
	}
}

func TestSummaryWarnings(t *testing.T) {
	r := fiveTenants()
	r.Results[1].Status, r.Results[1].Reason, r.Results[1].Detail = fleet.Skipped, "canary failed", nil
	r.Stopped = "canary failed"
	got := Summary(r, 0)
	if !strings.Contains(got, "> ⚠️ **Stopped early: canary failed.** 1 tenant was not started.") {
		t.Errorf("stopped warning missing:\n%s", got)
	}
	if !strings.HasPrefix(got, "## ❌ pgfleet migrate: 5 tenants, 1 failed, 1 skipped\n") {
		t.Errorf("title: %q", strings.SplitN(got, "\n", 2)[0])
	}
	if !strings.Contains(section(got, "Schema versions"), "| unknown (not reached) | 1 | 1 |") {
		t.Errorf("tenants without a detail should count as unknown")
	}
	failures := tableRows(section(got, "Failures"))
	if len(failures) != 2 || failures[1][0] != "bolt" || failures[1][3] != "not started: canary failed" {
		t.Errorf("few skipped tenants get rows: %q", failures)
	}

	r = fiveTenants()
	r.Cancelled, r.Stopped = true, "cancelled"
	r.Results[2].Status, r.Results[2].Err = fleet.Cancelled, errors.New("context canceled")
	r.Results[4].Status, r.Results[4].Reason, r.Results[4].Detail = fleet.Skipped, "cancelled", nil
	got = Summary(r, 0)
	if !strings.HasPrefix(got, "## 🛑 pgfleet migrate: 5 tenants, 1 cancelled, 1 skipped\n") {
		t.Errorf("title: %q", strings.SplitN(got, "\n", 2)[0])
	}
	if !strings.Contains(got, "> 🛑 **The run was cancelled** (interrupted by a signal): 1 tenant was stopped while running, 1 never started.") {
		t.Errorf("cancel warning missing:\n%s", got)
	}
	if strings.Contains(got, "Stopped early") {
		t.Errorf("Stopped=cancelled repeats the cancel warning")
	}

	r = fiveTenants()
	r.Results = r.Results[:2]
	r.SourceErr = errors.New("list projects (page 3): 503 Service Unavailable")
	got = Summary(r, 0)
	if !strings.HasPrefix(got, "## ❌ pgfleet migrate: 2 tenants, listing tenants failed\n") {
		t.Errorf("title: %q", strings.SplitN(got, "\n", 2)[0])
	}
	if !strings.Contains(got, "> ❌ **Listing tenants failed part-way:** list projects (page 3): 503 Service Unavailable.") {
		t.Errorf("source error warning missing:\n%s", got)
	}
}

func TestSummaryManySkippedSummarized(t *testing.T) {
	r := Run{Mode: "migrate", Stopped: "max-failures (3) reached"}
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
}

func TestSummaryEscaping(t *testing.T) {
	evil := "a|b<script>alert(1)</script>\n# heading `code` [x](http://e.vil) & *b*"
	r := Run{Mode: "migrate", Results: []fleet.Result{{
		Tenant: tenant.Tenant{ID: "id|1", Name: evil},
		Status: fleet.Failed,
		Err:    errors.New("line one\nline two | <img src=x onerror=alert(1)>"),
		Detail: &migrate.Detail{From: "1", To: "1"},
	}}}
	got := Summary(r, 0)
	for _, bad := range []string{"<script>", "<img", "\n# heading", "a|b"} {
		if strings.Contains(got, bad) {
			t.Errorf("summary contains raw %q:\n%s", bad, got)
		}
	}
	if regexp.MustCompile("[^\\\\][\\]`[]").MatchString(got) {
		t.Errorf("summary contains an unescaped link bracket or backtick:\n%s", got)
	}
	wantName := "a\\|b&lt;script&gt;alert(1)&lt;/script&gt; # heading \\`code\\` \\[x\\](http://e.vil) &amp; \\*b\\*"
	for _, sec := range []string{"Failures", "Tenants"} {
		rows := tableRows(section(got, sec))
		if len(rows) != 1 || len(rows[0]) != 4 && len(rows[0]) != 7 {
			t.Fatalf("%s: a cell escaped its column: %q", sec, rows)
		}
		if rows[0][0] != wantName || rows[0][1] != `id\|1` {
			t.Errorf("%s: name cell\n got %q\nwant %q", sec, rows[0][0], wantName)
		}
	}
	if rows := tableRows(section(got, "Failures")); rows[0][3] != "line one line two \\| &lt;img src=x onerror=alert(1)&gt;" {
		t.Errorf("error cell %q", rows[0][3])
	}

	// The JSON report keeps the name exactly.
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var rep struct{ Tenants []struct{ Name string } }
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Tenants[0].Name != evil {
		t.Errorf("JSON name %q", rep.Tenants[0].Name)
	}
	if strings.Contains(buf.String(), "<script>") {
		t.Errorf("JSON should escape HTML")
	}
}

func TestSummaryLongErrorTruncated(t *testing.T) {
	long := "boom: " + strings.Repeat("é", 1000)
	r := Run{Mode: "migrate", Results: []fleet.Result{{Tenant: tn("p", "n"), Status: fleet.Failed, Err: errors.New(long)}}}
	rows := tableRows(section(Summary(r, 0), "Failures"))
	cell := rows[0][3]
	if !strings.HasSuffix(cell, "…") || len([]rune(cell)) != maxErrorRunes {
		t.Errorf("error cell: %d runes, ends %q", len([]rune(cell)), cell[len(cell)-8:])
	}
	var buf bytes.Buffer
	WriteJSON(&buf, r)
	if !strings.Contains(buf.String(), long) {
		t.Errorf("the JSON report keeps the whole error")
	}
}

const fakePassword = "s3cr3t-Pa55word"

func TestScrubEverywhere(t *testing.T) {
	scrub := func(s string) string { return strings.ReplaceAll(s, fakePassword, "***") }
	r := fiveTenants()
	r.Scrub = scrub
	r.Results[2].Err = errors.New("connect postgres://owner:" + fakePassword + "@ep-x.neon.tech/neondb: password " + fakePassword + " rejected")
	r.Results[0].Reason = "reason with " + fakePassword
	r.Results[1].Tenant.Name = "bolt-" + fakePassword
	r.Results[3].Err = errors.New("dial: postgres://owner:pw-proj-d@ep-proj-d.neon.tech/neondb failed") // its own URL, unknown to Scrub
	r.Results[3].Status = fleet.Failed
	r.SourceErr = errors.New("neon: key " + fakePassword)
	r.Stopped = "stopped " + fakePassword

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
	if !strings.Contains(summary, "connect postgres://owner:\\*\\*\\*@ep-x.neon.tech/neondb: password \\*\\*\\* rejected") ||
		!strings.Contains(summary, "bolt-\\*\\*\\*") || !strings.Contains(summary, "neon: key \\*\\*\\*") {
		t.Errorf("scrubbed text missing from summary:\n%s", summary)
	}
	if !strings.Contains(summary, "dial: postgres://owner:xxxxx@ep-proj-d.neon.tech/neondb failed") {
		t.Errorf("a tenant's own password must be redacted even if Scrub misses it:\n%s", summary)
	}
	if !strings.Contains(buf.String(), `"source_error":"neon: key ***"`) || !strings.Contains(buf.String(), `"name":"bolt-***"`) {
		t.Errorf("scrubbed text missing from JSON:\n%s", buf.String())
	}
}

func TestWriteJSON(t *testing.T) {
	r := fiveTenants()
	r.Stopped = "max-failures (1) reached"
	r.Results = append(r.Results, fleet.Result{Tenant: tenant.Tenant{ID: "proj-f", Name: "fox"}, Status: fleet.Skipped, Reason: "max-failures (1) reached"})
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "postgres://") || strings.Contains(buf.String(), "pw-proj") || strings.Contains(buf.String(), `"url"`) {
		t.Fatalf("JSON leaks a URL or password:\n%s", buf.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, buf.String())
	}
	for key, want := range map[string]any{
		"mode": "migrate", "started_at": "2025-03-04T05:06:07Z", "duration_ms": 72340.0, "dry_run": false,
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
		"id": "proj-c", "name": "zeta", "host": "ep-proj-c.neon.tech", "database": "neondb", "status": "failed",
		"error":  "apply 20240301000000_invoices.sql: ERROR: column \"total\" does not exist (SQLSTATE 42703)",
		"reason": "", "canary": false, "attempts": 2.0, "started_at": "2025-03-04T05:06:07Z", "duration_ms": 1500.0,
		"from_version": "20240101000000", "to_version": "20240201000000", "failed_file": "20240301000000_invoices.sql",
	} {
		if failed[key] != want {
			t.Errorf("tenant %s = %#v, want %#v", key, failed[key], want)
		}
	}
	if fmt.Sprint(failed["applied"], failed["pending"]) != "[20240201000000_orders.sql] [20240301000000_invoices.sql]" {
		t.Errorf("applied/pending %v %v", failed["applied"], failed["pending"])
	}
	skipped := tenants[5].(map[string]any)
	if skipped["started_at"] != nil || skipped["reason"] != "max-failures (1) reached" || skipped["host"] != "" ||
		fmt.Sprint(skipped["applied"]) != "[]" || skipped["from_version"] != "" {
		t.Errorf("skipped tenant %v", skipped)
	}
	if len(tenants[0].(map[string]any)) != 16 {
		t.Errorf("tenant record has %d keys, want 16", len(tenants[0].(map[string]any)))
	}

	r.DryRun = true
	buf.Reset()
	WriteJSON(&buf, r)
	if !strings.Contains(buf.String(), `"dry_run":true`) || !strings.Contains(buf.String(), `"pending":1}`) {
		t.Errorf("dry-run JSON: %s", buf.String()[:300])
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
	want := map[string]string{"total": "5", "succeeded": "3", "up-to-date": "1", "failed": "1", "skipped": "0", "cancelled": "0", "report-file": "pgfleet-report.json"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outputs\n got %v\nwant %v", got, want)
	}
}

func TestExitCode(t *testing.T) {
	ok := func() Run {
		r := fiveTenants()
		r.Results[2].Status, r.Results[2].Err = fleet.Succeeded, nil
		return r
	}
	cases := []struct {
		name string
		edit func(*Run)
		want int
	}{
		{"all succeeded or up to date", func(*Run) {}, 0},
		{"no tenants", func(r *Run) { r.Results = nil }, 0},
		{"dry run", func(r *Run) { r.DryRun = true }, 0},
		{"one failed", func(r *Run) { r.Results[0].Status = fleet.Failed }, 1},
		{"one skipped", func(r *Run) { r.Results[0].Status = fleet.Skipped }, 1},
		{"one cancelled", func(r *Run) { r.Results[0].Status = fleet.Cancelled }, 1},
		{"run cancelled", func(r *Run) { r.Cancelled = true }, 1},
		{"stopped", func(r *Run) { r.Stopped = "canary failed" }, 1},
		{"source error", func(r *Run) { r.SourceErr = errors.New("503") }, 1},
		{"source error, no tenants", func(r *Run) { r.Results, r.SourceErr = nil, errors.New("503") }, 1},
		{"unknown status", func(r *Run) { r.Results[0].Status = "" }, 1},
	}
	for _, c := range cases {
		r := ok()
		c.edit(&r)
		if got := ExitCode(r); got != c.want {
			t.Errorf("%s: ExitCode = %d, want %d", c.name, got, c.want)
		}
	}
}

func bigRun(n int) Run {
	r := Run{Mode: "migrate", Duration: 3*time.Hour + 25*time.Minute + 10*time.Second, ReportFile: "out/pgfleet-report.json"}
	for i := range n {
		res := fleet.Result{
			Tenant:   tn(fmt.Sprintf("proj-%05d-shy-river", i), fmt.Sprintf("customer-%05d", i)),
			Status:   fleet.Succeeded,
			Attempts: 1,
			Started:  t0,
			Duration: time.Duration(i%97) * 100 * time.Millisecond,
			Detail:   &migrate.Detail{From: "20240101000000", To: "20240301000000", Applied: []string{"20240201000000_orders.sql", "20240301000000_invoices.sql"}},
		}
		if i%1000 == 7 {
			res.Status = fleet.Failed
			res.Err = fmt.Errorf("apply 20240201000000_orders.sql: %s", strings.Repeat("lock timeout ", 40))
			res.Detail = &migrate.Detail{From: "20240101000000", To: "20240101000000", Failed: "20240201000000_orders.sql"}
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
			if !strings.HasPrefix(got, "## ❌ pgfleet migrate: 30,000 tenants, 30 failed\n") ||
				!strings.Contains(got, "\n30,000 tenants · 29,970 succeeded · 0 up to date · 30 failed · 0 skipped · 0 cancelled · took 3h25m\n") {
				t.Errorf("title or totals wrong:\n%.400s", got)
			}
			if rows := tableRows(section(got, "Schema versions")); fmt.Sprint(rows) != "[[20240101000000 30,000 30] [20240301000000 0 29,970]]" {
				t.Errorf("versions %v", rows)
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
			if failures := tableRows(section(got, "Failures")); limit >= 20000 || limit == 0 {
				if len(failures) != 30 {
					t.Errorf("%d failure rows, want 30", len(failures))
				}
				if shown > 0 && !strings.HasPrefix(strings.Join(tableRows(section(got, "Tenants"))[0], "|"), "customer-00007|") {
					t.Errorf("failed tenants come first")
				}
			} else if !strings.Contains(got, " more failed, cancelled or skipped tenants not shown:** see the JSON report") {
				t.Errorf("failures table should be cut at limit %d:\n%s", limit, got)
			}
			if limit == MaxSummaryBytes && (shown < 1000 || len(got) < limit-2000) {
				t.Errorf("a 1 MiB summary should be nearly full: %d rows, %d bytes", shown, len(got))
			}
		})
	}

	// A limit too small for anything still holds.
	if got := Summary(r, 40); len(got) > 40 || !strings.HasPrefix(got, "## ❌") {
		t.Errorf("tiny limit: %q", got)
	}

	var buf bytes.Buffer
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

func TestSummaryOtherMode(t *testing.T) {
	r := Run{Mode: "backup", Duration: 3 * time.Second, Results: []fleet.Result{
		{Tenant: tn("p2", "beta"), Status: fleet.Succeeded, Duration: time.Second},
		{Tenant: tn("p1", "alpha"), Status: fleet.Succeeded, Duration: 2 * time.Second},
	}}
	got := Summary(r, 0)
	if !strings.HasPrefix(got, "## ✅ pgfleet backup: 2 tenants, all succeeded\n") || strings.Contains(got, "Schema versions") {
		t.Errorf("backup summary:\n%s", got)
	}
	if rows := tableRows(section(got, "Tenants")); fmt.Sprint(rows) != "[[alpha p1 ✅ succeeded 2s] [beta p2 ✅ succeeded 1s]]" {
		t.Errorf("rows %q", rows)
	}
	var buf bytes.Buffer
	WriteJSON(&buf, r)
	if strings.Contains(buf.String(), "from_version") {
		t.Errorf("migrate fields in a backup report: %s", buf.String())
	}
}
