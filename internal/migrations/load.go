// Package migrations reads a directory of dbmate migrations: every file
// validated once, held in memory, and the order of versions. It is shared by
// the modes that read migrations (migrate, rollback, status) so no mode
// imports another.
package migrations

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing/fstest"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"

	"github.com/pgfleet/pgfleet/internal/sqlsplit"
)

// File is one validated migration file.
type File struct {
	Name        string // file name, e.g. 20240101120000_create_users.sql
	Version     string // leading digits of the name
	Transaction bool   // false when the file says "-- migrate:up transaction:false"
	HasDown     bool   // the down section holds a statement: rollback can undo the file
}

// Set is the validated contents of a migrations directory. The files are
// held in memory, so every tenant gets exactly the bytes that were validated
// even if the directory changes during the run.
type Set struct {
	Dir   string
	Files []File // in the order dbmate applies them (by file name)
	fsys  fstest.MapFS
}

// FileError points at the file and line a problem is on.
type FileError struct {
	Path string
	Line int // 0 when the problem is the file as a whole
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// dbmate's own pattern: a migration is any *.sql file whose name starts with digits.
var versionedName = regexp.MustCompile(`^(\d+).*\.sql$`)

var (
	upDirective   = regexp.MustCompile(`^--\s*migrate:up(\s*$|\s+\S+)`)
	downDirective = regexp.MustCompile(`^--\s*migrate:down(\s*$|\s+\S+)`)
)

// Load reads and validates every migration in dir. All problems are
// returned together, each a *FileError naming the file and line.
func Load(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%q does not exist (relative paths are from the repository root: the workspace in Actions, the working directory on the CLI)", dir)
		}
		return nil, fmt.Errorf("%q: %w", dir, err)
	}
	set := &Set{Dir: dir, fsys: fstest.MapFS{}}
	var errs []error
	versions := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		m := versionedName.FindStringSubmatch(name)
		if m == nil {
			errs = append(errs, &FileError{Path: path, Msg: "a migration file name must start with its version, like 20240101120000_create_users.sql (dbmate would silently skip this file)"})
			continue
		}
		version := m[1]
		if prev, dup := versions[version]; dup {
			errs = append(errs, &FileError{Path: path, Msg: fmt.Sprintf("version %s is also used by %s: each migration needs its own version", version, prev)})
			continue
		}
		versions[version] = name
		body, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &FileError{Path: path, Msg: err.Error()})
			continue
		}
		// Editors on Windows may start a file with a UTF-8 byte order mark,
		// which would hide the "-- migrate:up" line from dbmate: dropped
		// here, so what is checked is what dbmate runs.
		body = bytes.TrimPrefix(body, []byte("\uFEFF"))
		file, err := validate(path, name, version, string(body))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.Files = append(set.Files, file)
		set.fsys[name] = &fstest.MapFile{Data: body, Mode: 0o444}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(set.Files) == 0 {
		return nil, fmt.Errorf("%q has no migration files (want files like 20240101120000_create_users.sql)", dir)
	}
	sort.Slice(set.Files, func(i, j int) bool { return set.Files[i].Name < set.Files[j].Name })
	return set, nil
}

// validate checks one file the way dbmate will parse it, and also rejects
// what dbmate accepts but gets wrong: several "-- migrate:up" sections in one
// file record the version twice (an open upstream bug), which fails on the
// migrations table's primary key after the first section has run.
func validate(path, name, version, body string) (File, error) {
	lines := strings.Split(body, "\n")
	upLines, downLines := []int{}, []int{}
	firstStmt := 0
	for i, l := range lines {
		switch {
		case upDirective.MatchString(l):
			upLines = append(upLines, i+1)
		case downDirective.MatchString(l):
			downLines = append(downLines, i+1)
		case len(upLines) == 0 && firstStmt == 0 && strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "--"):
			firstStmt = i + 1
		}
	}
	fe := func(line int, msg string) error { return &FileError{Path: path, Line: line, Msg: msg} }
	switch {
	case len(upLines) == 0:
		return File{}, fe(1, "no '-- migrate:up' line: dbmate needs one to know what to apply")
	case len(downLines) > 0 && downLines[0] < upLines[0]:
		// Before the statement check: a down section placed first has
		// statements above the up directive, and "move it below the
		// directive" would turn them into part of the up migration.
		return File{}, fe(downLines[0], "'-- migrate:down' comes before '-- migrate:up'")
	case firstStmt > 0 && firstStmt < upLines[0]:
		return File{}, fe(firstStmt, "statement before '-- migrate:up': dbmate would reject it; move it below the directive")
	case len(upLines) > 1:
		return File{}, fe(upLines[1], "second '-- migrate:up' section: dbmate records the version once per section and fails on the second; split it into its own file")
	case len(downLines) == 0:
		return File{}, fe(len(lines), "no '-- migrate:down' line: dbmate requires a down section, even an empty one")
	case len(downLines) > 1:
		return File{}, fe(downLines[1], "second '-- migrate:down' section: keep one per file")
	}
	// Let dbmate's own parser have the final word, so we accept exactly
	// what it will run.
	parsed, err := (&dbmate.Migration{FS: fstest.MapFS{name: {Data: []byte(body)}}, FilePath: name}).Parse()
	if err != nil {
		return File{}, fe(upLines[0], err.Error())
	}
	return File{Name: name, Version: version, Transaction: parsed[0].UpOptions.Transaction(), HasDown: len(sqlsplit.Split(parsed[0].Down)) > 0}, nil
}

// Latest is the highest version in the set.
func (s *Set) Latest() string {
	latest := ""
	for _, f := range s.Files {
		if VersionLess(latest, f.Version) {
			latest = f.Version
		}
	}
	return latest
}

// Pending lists the files not yet applied, in the order dbmate applies them.
func (s *Set) Pending(applied map[string]bool) []File {
	var out []File
	for _, f := range s.Files {
		if !applied[f.Version] {
			out = append(out, f)
		}
	}
	return out
}

// FS holds the validated files' bytes, by file name, for dbmate.
func (s *Set) FS() fstest.MapFS { return s.fsys }

// Has reports whether a file of the set has version.
func (s *Set) Has(version string) bool {
	return slices.ContainsFunc(s.Files, func(f File) bool { return f.Version == version })
}

// Above lists the applied files above version target, newest first (the
// order a rollback undoes them), and the applied versions above target
// that have no file in the set: nothing can undo those.
func (s *Set) Above(applied map[string]bool, target string) (undo []File, missing []string) {
	known := map[string]bool{}
	for _, f := range s.Files {
		known[f.Version] = true
		if applied[f.Version] && VersionLess(target, f.Version) {
			undo = append(undo, f)
		}
	}
	slices.Reverse(undo)
	for v := range applied {
		if !known[v] && VersionLess(target, v) {
			missing = append(missing, v)
		}
	}
	slices.SortFunc(missing, func(a, b string) int { return strings.Compare(b, a) })
	return undo, missing
}

// VersionLess orders dbmate versions numerically (they are digit strings of
// any length; a missing version sorts first).
func VersionLess(a, b string) bool {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// Highest returns the highest applied version, "" for none.
func Highest(applied map[string]bool) string {
	best := ""
	for v := range applied {
		if best == "" || VersionLess(best, v) {
			best = v
		}
	}
	return best
}
