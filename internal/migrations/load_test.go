package migrations

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeDir creates a migrations directory holding files (name -> body).
// A name ending in "/" is created as a directory.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fileErrors flattens a (joined) error into its *FileErrors.
func fileErrors(t *testing.T, err error) []*FileError {
	t.Helper()
	var out []*FileError
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FileError); ok {
			out = append(out, fe)
			return
		}
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range u.Unwrap() {
				walk(x)
			}
			return
		}
		t.Errorf("error %q (%T) is not a *FileError", e, e)
	}
	if err != nil {
		walk(err)
	}
	return out
}

const good = "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n"

func TestLoadGoodSet(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"20240301000000_c.sql":    "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\n-- nothing undoes this; a comment is no statement\n",
		"20240101000000_a.sql":    "-- a comment first\n\n" + good,
		"20240201000000_b.sql":    "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (id);\n-- migrate:down\nDROP INDEX i;\n",
		"README.md":               "not a migration",
		"schema.sql.bak":          "not a migration",
		"subdir/":                 "",
		"20240401000000_dir.sql/": "", // a directory, even with a migration's name
	})
	// A file inside the subdirectory must not be read either.
	if err := os.WriteFile(filepath.Join(dir, "subdir", "20240501000000_nested.sql"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := []File{
		{Name: "20240101000000_a.sql", Version: "20240101000000", Transaction: true, HasDown: true},
		{Name: "20240201000000_b.sql", Version: "20240201000000", Transaction: false, HasDown: true},
		{Name: "20240301000000_c.sql", Version: "20240301000000", Transaction: true, HasDown: false},
	}
	if !reflect.DeepEqual(set.Files, want) {
		t.Errorf("Files = %+v\nwant    %+v", set.Files, want)
	}
	if set.Dir != dir {
		t.Errorf("Dir = %q, want %q", set.Dir, dir)
	}
	if got := set.Latest(); got != "20240301000000" {
		t.Errorf("Latest = %q", got)
	}
	// The set holds the validated bytes, not the directory.
	for _, f := range want {
		if _, ok := set.fsys[f.Name]; !ok {
			t.Errorf("fsys lacks %s", f.Name)
		}
	}
	if len(set.fsys) != len(want) {
		t.Errorf("fsys holds %d files, want %d", len(set.fsys), len(want))
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // nil: one file, 1_x.sql, holding body
		body  string
		path  string // file the error names (1_x.sql when files is nil)
		line  int
		msg   string // substring of the message
	}{
		{name: "second up", body: "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n\n-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n", line: 6, msg: "second '-- migrate:up'"},
		{name: "missing up", body: "-- just a comment\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n", line: 1, msg: "no '-- migrate:up'"},
		{name: "upgrade is not up", body: "-- migrate:upgrade\nSELECT 1;\n-- migrate:down\n", line: 1, msg: "no '-- migrate:up'"},
		{name: "statement before up", body: "-- header\n\nCREATE TYPE s AS ENUM ('a');\n-- migrate:up\nCREATE TABLE a (s s);\n-- migrate:down\nDROP TABLE a;\n", line: 3, msg: "statement before"},
		{name: "two downs", body: "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n-- migrate:down\nSELECT 3;\n", line: 5, msg: "second '-- migrate:down'"},
		{name: "down before up", body: "-- migrate:down\nDROP TABLE a;\n-- migrate:up\nCREATE TABLE a (id int);\n", line: 1, msg: "comes before"},
		{name: "empty down before up", body: "-- header\n-- migrate:down\n-- migrate:up\nCREATE TABLE a (id int);\n", line: 2, msg: "comes before"},
		{name: "name without version", files: map[string]string{"1_ok.sql": good, "create_users.sql": good}, path: "create_users.sql", line: 0, msg: "must start with its version"},
		{name: "duplicate version", files: map[string]string{"20240101_a.sql": good, "20240101_b.sql": good}, path: "20240101_b.sql", line: 0, msg: "20240101_a.sql"},
	}
	for _, tt := range tests {
		if tt.files == nil {
			tt.files, tt.path = map[string]string{"1_x.sql": tt.body}, "1_x.sql"
		}
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDir(t, tt.files)
			set, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded with %d files", len(set.Files))
			}
			if set != nil {
				t.Errorf("Load returned a set with its error")
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q holds no *FileError", err)
			}
			fes := fileErrors(t, err)
			if len(fes) != 1 {
				t.Fatalf("got %d file errors, want 1: %v", len(fes), err)
			}
			fe = fes[0]
			if want := filepath.Join(dir, tt.path); fe.Path != want {
				t.Errorf("Path = %q, want %q", fe.Path, want)
			}
			if fe.Line != tt.line {
				t.Errorf("Line = %d, want %d (%v)", fe.Line, tt.line, fe)
			}
			if !strings.Contains(fe.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to mention %q", fe.Msg, tt.msg)
			}
		})
	}
}

func TestLoadMissingDownPointsAtEnd(t *testing.T) {
	body := "-- migrate:up\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);"
	dir := writeDir(t, map[string]string{"1_x.sql": body})
	_, err := Load(dir)
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("Load error = %v, want a *FileError", err)
	}
	if fe.Path != filepath.Join(dir, "1_x.sql") || fe.Line != 3 || !strings.Contains(fe.Msg, "no '-- migrate:down'") {
		t.Errorf("got %q line %d %q; want 1_x.sql, line 3 (the end), no down", fe.Path, fe.Line, fe.Msg)
	}
}

func TestLoadReportsEveryBadFile(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"1_ok.sql":    good,
		"2_noup.sql":  "SELECT 1;\n",
		"3_nodn.sql":  "-- migrate:up\nSELECT 1;\n",
		"x_named.sql": good,
	})
	_, err := Load(dir)
	fes := fileErrors(t, err)
	var got []string
	for _, fe := range fes {
		got = append(got, filepath.Base(fe.Path))
	}
	want := []string{"2_noup.sql", "3_nodn.sql", "x_named.sql"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files with errors = %q, want %q (%v)", got, want, err)
	}
}

func TestLoadDirErrors(t *testing.T) {
	empty := t.TempDir()
	onlyOther := writeDir(t, map[string]string{"README.md": "x", "sub/": ""})
	tests := []struct {
		name, dir, want string
	}{
		{"missing", filepath.Join(empty, "nope"), "does not exist"},
		{"empty", empty, "no migration files"},
		{"only non-migrations", onlyOther, "no migration files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Load(tt.dir)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", set)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.dir) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q should mention %q and %q (the caller names the input)", msg, tt.dir, tt.want)
			}
		})
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"9", "10", true},
		{"10", "9", false},
		{"20240101", "202401011200", true},
		{"202401011200", "20240101", false},
		{"20240101", "20240102", true},
		{"20240102", "20240101", false},
		{"5", "5", false},
		{"007", "7", false}, // same number
		{"7", "007", false},
		{"007", "10", true},
		{"", "1", true}, // no version sorts first
		{"1", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := VersionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("VersionLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestHighest(t *testing.T) {
	tests := []struct {
		applied []string
		want    string
	}{
		{nil, ""},
		{[]string{"1"}, "1"},
		{[]string{"9", "10", "2"}, "10"},
		{[]string{"202401011200", "20240101", "20231231"}, "202401011200"},
		{[]string{"20240101", "99999999"}, "99999999"},
	}
	for _, tt := range tests {
		m := map[string]bool{}
		for _, v := range tt.applied {
			m[v] = true
		}
		// Map order is random: repeat so an order-dependent bug shows.
		for range 20 {
			if got := Highest(m); got != tt.want {
				t.Fatalf("Highest(%v) = %q, want %q", tt.applied, got, tt.want)
			}
		}
	}
}

func TestSetLatestAndPending(t *testing.T) {
	files := func(versions ...string) []File {
		var out []File
		for _, v := range versions {
			out = append(out, File{Name: v + "_m.sql", Version: v})
		}
		return out
	}
	tests := []struct {
		name        string
		files       []File // in name order, as Load leaves them
		applied     []string
		wantLatest  string
		wantPending []string
	}{
		{"empty set", nil, nil, "", nil},
		{"nothing applied", files("1", "2"), nil, "2", []string{"1", "2"}},
		{"all applied", files("1", "2"), []string{"1", "2"}, "2", nil},
		{"gap is pending", files("1", "2", "3"), []string{"1", "3"}, "3", []string{"2"}},
		// Name order puts "10" before "9"; Latest is still numeric.
		{"different lengths", files("10", "9"), []string{"9"}, "10", []string{"10"}},
		{"timestamps of different lengths", files("20240101", "202401011200"), []string{"20240101"}, "202401011200", []string{"202401011200"}},
		{"applied versions not in the set are ignored", files("1"), []string{"0", "2"}, "1", []string{"1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Set{Files: tt.files}
			if got := s.Latest(); got != tt.wantLatest {
				t.Errorf("Latest = %q, want %q", got, tt.wantLatest)
			}
			applied := map[string]bool{}
			for _, v := range tt.applied {
				applied[v] = true
			}
			var got []string
			for _, f := range s.Pending(applied) {
				got = append(got, f.Version)
			}
			if !reflect.DeepEqual(got, tt.wantPending) {
				t.Errorf("Pending = %q, want %q", got, tt.wantPending)
			}
		})
	}
}

// A byte order mark must not hide the "-- migrate:up" line: it is dropped,
// and the bytes dbmate gets are the ones checked.
func TestLoadStripsByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	body := "\uFEFF-- migrate:up\ncreate table bom (id int);\n-- migrate:down\ndrop table bom;\n"
	if err := os.WriteFile(filepath.Join(dir, "20240101000000_bom.sql"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if b := set.fsys["20240101000000_bom.sql"].Data; strings.HasPrefix(string(b), "\uFEFF") {
		t.Errorf("the BOM reaches dbmate")
	}
}
