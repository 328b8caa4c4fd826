package main

import (
	"os"
	"path/filepath"
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
