package app

import (
	"testing"

	"github.com/pgfleet/pgfleet/internal/input"
)

// As the action, a path in the workspace or relative to it is kept; one
// outside it is refused, naming the input.
func TestCheckContainerPaths(t *testing.T) {
	for _, c := range []struct {
		in      map[string]string
		refused string
	}{
		{map[string]string{"destination": "file:backups", "report-file": "reports/r.json", "pg-dump-path": "pg_dump"}, ""},
		{map[string]string{"destination": "file:///github/workspace/backups", "report-file": "/github/workspace/r.json"}, ""},
		{map[string]string{"destination": "s3://bucket/prefix"}, ""},
		{map[string]string{"destination": "file:///backups"}, "destination"},
		{map[string]string{"destination": "file:///github/workspace/../backups"}, "destination"},
		{map[string]string{"report-file": "/tmp/r.json"}, "report-file"},
		{map[string]string{"pg-dump-path": "/usr/lib/postgresql/18/bin/pg_dump"}, "pg-dump-path"},
	} {
		table := Table()
		v := input.NewValues(table, func(name string) string { return c.in[name] })
		checkContainerPaths(v, table, "backup", containerWorkspace)
		var got string
		for _, e := range input.Split(v.Err()) {
			if ie, ok := e.(*input.Error); ok {
				got = ie.Input
			}
		}
		if got != c.refused {
			t.Errorf("%v: refused %q, want %q (%v)", c.in, got, c.refused, v.Err())
		}
	}
	if !inContainerAction(func(k string) string {
		return map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/github/workspace"}[k]
	}) || inContainerAction(func(k string) string {
		return map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/home/runner/work/r/r"}[k]
	}) {
		t.Error("inContainerAction tells the container from the runner's host wrongly")
	}
}
