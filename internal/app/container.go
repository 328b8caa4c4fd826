package app

import (
	"path/filepath"
	"strings"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/storage/destination"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
)

// containerWorkspace is where the runner mounts the workspace inside a
// Docker action's container. It is how pgfleet knows it runs as the action:
// a CLI run on the runner itself sees the host's path, where files stay.
const containerWorkspace = "/github/workspace"

// inContainerAction reports that pgfleet runs as the action, inside the
// container whose own files vanish when the step ends.
func inContainerAction(getenv func(string) string) bool {
	return getenv("GITHUB_ACTIONS") == "true" && filepath.Clean(getenv("GITHUB_WORKSPACE")) == containerWorkspace
}

// checkContainerPaths refuses, as bad input, a path that would live and die
// inside the action's container: a file:// destination, a report-file or a
// pg-dump-path outside the workspace. A backup there would report success
// and be gone when the step ends. Relative paths are in the workspace.
func checkContainerPaths(v *input.Values, table *input.Table, mode, workspace string) {
	usedBy := func(in *input.Input) bool {
		t, ok := table.Lookup(in.Name)
		return ok && t.UsedBy(mode)
	}
	outside := func(p string) bool {
		if !filepath.IsAbs(p) {
			return false
		}
		rel, err := filepath.Rel(workspace, filepath.Clean(p))
		return err != nil || rel == ".." || strings.HasPrefix(rel, "../")
	}
	const why = "outside the workspace, inside the action's container, whose files vanish when the step ends (the runner mounts only /github/workspace, /github/home, /github/runner_temp, /github/workflow and /github/file_commands)"
	if usedBy(destination.InputDestination) {
		if dest := v.String(destination.InputDestination); strings.HasPrefix(dest, "file:") {
			if p, err := dir.ParseDestination(dest); err == nil && outside(p) {
				v.Bad(destination.InputDestination, "%s is %s: give a folder relative to the workspace, like file:backups, or an s3:// bucket", dest, why)
			}
		}
	}
	if p := v.String(input.ReportFile); outside(p) {
		v.Bad(input.ReportFile, "%s is %s: give a path relative to the workspace, like reports/pgfleet.json", p, why)
	}
	if usedBy(pgtools.InputPgDumpPath) {
		if p := v.String(pgtools.InputPgDumpPath); outside(p) {
			v.Bad(pgtools.InputPgDumpPath, "%s is %s, not the runner's: leave it unset for the image's pg_dump, or give one relative to the workspace", p, why)
		}
	}
}
