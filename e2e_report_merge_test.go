package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
)

// The sharded migrate example as the runner runs it: a canary job (one
// tenant, by name), then a matrix of 2 shards with no canary, then
// `pgfleet report merge` over the folder download-artifact fills (one
// sub-folder per artifact, each holding pgfleet-migrate-report.json). One
// summary comes out with every tenant once and the whole fleet's totals.
func TestReportMergeOfShards(t *testing.T) {
	f := newFleet(t, 6, neonapi.Config{})
	broken := f.Tenants[5]
	execSQL(t, broken.DB.URL, "CREATE TABLE users (x int)") // its first migration fails

	// keep files a job's report as download-artifact lays out its artifact.
	downloads := t.TempDir()
	keep := func(artifact string, r run) {
		t.Helper()
		dir := filepath.Join(downloads, artifact)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pgfleet-migrate-report.json"), []byte(r.files["pgfleet-migrate-report.json"]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	canary := f.Tenants[0]
	in := neonInputs(f, "testdata/migrations")
	in["projects"] = canary.Name
	r := runPgfleet(t, in)
	mustCode(t, r, 0)
	keep("pgfleet-report-canary", r)
	// Which shard holds the broken tenant is the hash's business: exit 1 for
	// that shard, 0 for the other.
	failedShards := 0
	for _, shard := range []string{"1/2", "2/2"} {
		in := neonInputs(f, "testdata/migrations")
		in["shard"] = shard
		r := runPgfleet(t, in)
		if r.code == 1 {
			failedShards++
		} else {
			mustCode(t, r, 0)
		}
		keep("pgfleet-report-shard-"+shard[:1], r)
	}
	if failedShards != 1 {
		t.Fatalf("%d shards failed, want the one holding %s", failedShards, broken.Name)
	}

	merge := func(env []string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		cmd := cli(t, env, append([]string{"report", "merge"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}

	// On the CLI: the summary on standard output.
	code, summary, stderr := merge(nil, downloads)
	if code != 1 {
		t.Fatalf("merge: exit %d, want 1 (a shard's tenant failed)\n%s%s", code, summary, stderr)
	}
	first := strings.SplitN(summary, "\n", 2)[0]
	if !strings.Contains(first, "6 tenants, 1 failed") {
		t.Errorf("verdict %q, want the whole fleet's: 6 tenants, 1 failed", first)
	}
	if !strings.Contains(summary, "6 tenants · 5 succeeded · 0 up to date · 1 failed") {
		t.Errorf("totals are not the fleet's (the canary counted once, as succeeded):\n%s", summary)
	}
	for _, tn := range f.Tenants {
		if n := strings.Count(summary, "| "+tn.Name+" | "+tn.ProjectID+" |"); n < 1 {
			t.Errorf("%s (%s) has no row in the merged summary", tn.Name, tn.ProjectID)
		}
	}
	for _, want := range []string{"| pgfleet-report-canary | 1 |", "| pgfleet-report-shard-1 | 3 |", "| pgfleet-report-shard-2 | 3 |", "1 tenant is in more than one report", "already exists"} {
		if !strings.Contains(summary, want) {
			t.Errorf("merged summary lacks %q:\n%s", want, summary)
		}
	}
	assertNoLeak(t, run{stdout: summary, stderr: stderr}, broken.DB.Password, canary.DB.Password)

	// In Actions: appended to the step summary, a line on standard output.
	stepSummary := filepath.Join(t.TempDir(), "summary.md")
	code, stdout, _ := merge([]string{"GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY=" + stepSummary}, downloads)
	got, _ := os.ReadFile(stepSummary)
	if code != 1 || string(got) != summary || strings.Contains(stdout, "### Tenants") {
		t.Errorf("in Actions: exit %d, step summary equal to the CLI's: %v, stdout %q", code, string(got) == summary, stdout)
	}

	// A folder with no report (every shard died before writing one) and a
	// file that is not a report are refused, each saying why.
	if code, _, stderr := merge(nil, t.TempDir()); code != 2 || !strings.Contains(stderr, "no *.json report") {
		t.Errorf("empty folder: exit %d, stderr %q", code, stderr)
	}
	notReport := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(notReport, []byte(`{"hello":1}`), 0o644)
	if code, _, stderr := merge(nil, notReport); code != 2 || !strings.Contains(stderr, "x.json") {
		t.Errorf("not a report: exit %d, stderr %q", code, stderr)
	}
}
