package main

import (
	"strings"
	"testing"
)

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
