// Package migrate applies dbmate-format migrations to one tenant database at
// a time, safely: files are read and validated once before any tenant is
// touched, and each tenant is migrated under a Postgres advisory lock so two
// runs at once apply every migration exactly once.
package migrate

import "github.com/pgfleet/pgfleet/internal/migrations"

// The files and their versions are internal/migrations', shared with the
// status mode; these names keep migrate's code as it was.
type (
	File = migrations.File
	Set  = migrations.Set
)

// Load reads and validates every migration in dir (see migrations.Load).
func Load(dir string) (*Set, error) { return migrations.Load(dir) }

func versionLess(a, b string) bool { return migrations.VersionLess(a, b) }

func highest(applied map[string]bool) string { return migrations.Highest(applied) }

func versionCell(v string) string { return migrations.VersionCell(v) }

func filesCell(files []string) string { return migrations.FilesCell(files) }
