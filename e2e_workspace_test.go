package main

// What a run leaves for the workflow's next steps, on every exit: its JSON
// report and its outputs, in the workspace, the one place inside the
// action's container that outlives the step.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Inside a Docker action the workspace is mounted at the same relative
// place for the next step, while $RUNNER_TEMP is a container path: the
// report-file output must be relative to the workspace, and the report must
// be there, for actions/upload-artifact to find it.
func TestReportFileIsInTheWorkspace(t *testing.T) {
	dbs := newTenants(t, "rpath", 1)
	for _, c := range []struct{ given, want string }{
		{"", "pgfleet-migrate-report.json"},
		{"reports/tenants.json", filepath.Join("reports", "tenants.json")},
	} {
		in := inputs{"mode": "migrate", "database-urls": "only=" + dbs[0].URL, "migrations-dir": "testdata/migrations"}
		if c.given != "" {
			in["report-file"] = c.given
		}
		cmd, stdout, stderr, workspace := start(t, in)
		r := finish(t, cmd, stdout, stderr, workspace, time.Now())
		mustCode(t, r, 0)
		if got := r.outputs["report-file"]; got != c.want {
			t.Errorf("report-file %q: output %q, want %q (relative to the workspace)", c.given, got, c.want)
		}
		if _, err := os.Stat(filepath.Join(workspace, c.want)); err != nil {
			t.Errorf("report-file %q: the report is not in the workspace: %v", c.given, err)
		}
	}
}

// A run refused for its input still leaves what the workflow's next steps
// read: the JSON report (saying why) for actions/upload-artifact, and the
// outputs, failed-projects among them, for a retry.
func TestExitTwoWritesReportAndOutputs(t *testing.T) {
	dbs := newTenants(t, "notrun", 1)
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": "only=" + dbs[0].URL, "migrations-dir": "testdata/migrations", "concurrency": "0"})
	mustCode(t, r, 2)
	rep := readReport[struct {
		Mode  string `json:"mode"`
		Error string `json:"error"`
	}](t, r, "migrate")
	if rep.Mode != "migrate" || !strings.Contains(rep.Error, "input concurrency") {
		t.Errorf("report mode %q error %q, want migrate and the bad input", rep.Mode, rep.Error)
	}
	for k, want := range map[string]string{"total": "0", "failed": "0", "failed-projects": "", "report-file": "pgfleet-migrate-report.json"} {
		if got, ok := r.outputs[k]; !ok || got != want {
			t.Errorf("output %s = %q (set %v), want %q", k, got, ok, want)
		}
	}
	if !strings.Contains(r.summary, "Nothing was run") || !strings.Contains(r.summary, "input concurrency") {
		t.Errorf("summary does not say why nothing ran:\n%s", r.summary)
	}
	if versions(t, dbs[0].URL) != nil {
		t.Errorf("a refused run migrated the tenant")
	}
}

// Inside the action's container only the workspace (and a few runner
// folders) outlive the step: a backup to file:///abs, an absolute
// report-file or a pg-dump-path outside the workspace would report success
// and vanish. As the action they are refused before any tenant is touched;
// on the CLI the same paths are the user's own machine's, and accepted.
func TestContainerPathsOutsideTheWorkspace(t *testing.T) {
	dbs := newTenants(t, "cpath", 1)
	outside := t.TempDir()
	backups := filepath.Join(outside, "backups")
	report := filepath.Join(outside, "report.json")
	in := inputs{
		"mode":          "backup",
		"database-urls": "only=" + dbs[0].URL,
		"destination":   "file://" + backups,
		"report-file":   report,
		"pg-dump-path":  realPgDump(t),
	}
	r := runPgfleet(t, in, "GITHUB_WORKSPACE=/github/workspace")
	mustCode(t, r, 2)
	for _, want := range []string{"input destination: file://" + backups, "input report-file: " + report, "input pg-dump-path: ", "files vanish when the step ends", "relative to the workspace"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, tail(r.stderr, 20))
		}
	}
	if entries, _ := os.ReadDir(backups); len(entries) > 0 {
		t.Errorf("a refused run wrote a backup: %v", entries)
	}

	// The CLI, on the user's machine: accepted.
	cmd := cli(t, nil, "backup", "--database-urls", "only="+dbs[0].URL, "--destination", "file://"+backups,
		"--report-file", report, "--pg-dump-path", realPgDump(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the CLI refused paths of its own machine: %v\n%s", err, tail(string(out), 20))
	}
	if _, err := os.Stat(report); err != nil {
		t.Errorf("the CLI wrote no report: %v", err)
	}
	if entries, _ := os.ReadDir(backups); len(entries) != 1 {
		t.Errorf("the CLI's backup folder holds %d entries, want the tenant's one", len(entries))
	}
}
