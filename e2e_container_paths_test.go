package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

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
	cmd := exec.Command(binary, "backup", "--database-urls", "only="+dbs[0].URL, "--destination", "file://"+backups,
		"--report-file", report, "--pg-dump-path", realPgDump(t))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
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
