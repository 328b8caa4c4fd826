package app

import (
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// modePackages are the import paths of the registered modes.
func modePackages() []string {
	var pkgs []string
	for _, m := range modes {
		pkgs = append(pkgs, reflect.TypeOf(m).PkgPath())
	}
	return pkgs
}

// importGraph is what each package of the module imports, read from its
// files' import lines (go/parser, ImportsOnly: no build, no go command, no
// network). Test files are left out: a mode's tests may run against a real
// backend (storage/dir), which is the point of them.
func importGraph(t *testing.T) map[string][]string {
	t.Helper()
	root, module := moduleRoot(t)
	graph := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := path.Join(module, filepath.ToSlash(rel))
		if _, ok := graph[pkg]; !ok {
			graph[pkg] = nil // a package that imports nothing is still one
		}
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if !slices.Contains(graph[pkg], ip) {
				graph[pkg] = append(graph[pkg], ip)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return graph
}

// moduleRoot is the folder of go.mod above the test, and the module's path.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
					return dir, strings.TrimSpace(m)
				}
			}
			t.Fatalf("%s/go.mod names no module", dir)
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = up
	}
}

// reaches reports whether from imports to, directly or through other
// packages of the graph.
func reaches(graph map[string][]string, from, to string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(p string) bool {
		for _, ip := range graph[p] {
			if ip == to {
				return true
			}
			if !seen[ip] {
				seen[ip] = true
				if walk(ip) {
					return true
				}
			}
		}
		return false
	}
	return walk(from)
}

// internal is the prefix of the module's own packages.
const internal = "github.com/pgfleet/pgfleet/internal/"

// layeringProblems checks the rules the compiler does not: no mode
// imports a storage backend (the modes get a storage.Store from
// storage/destination and never learn which they have); only the tenant
// source and the app talk to Neon; and no mode imports another, even
// through a third package, so adding a mode is its package plus one line
// in the registry.
func layeringProblems(graph map[string][]string, modePkgs []string) []string {
	var problems []string
	for _, m := range modePkgs {
		for _, backend := range []string{internal + "storage/s3", internal + "storage/dir"} {
			if slices.Contains(graph[m], backend) {
				problems = append(problems, m+" imports the storage backend "+backend)
			}
		}
		for _, other := range modePkgs {
			if other != m && reaches(graph, m, other) {
				problems = append(problems, "mode "+m+" imports mode "+other)
			}
		}
	}
	// The Neon client: source lists the tenants with it, app builds the
	// run's one client (one rate limiter), mode hands it on (Env.Neon), and
	// migrate's rehearsal makes and deletes branches with it. No other mode
	// talks to Neon.
	neonUsers := []string{internal + "source", internal + "app", internal + "mode", internal + "migrate"}
	for pkg, imports := range graph {
		if slices.Contains(imports, internal+"neon") && !slices.Contains(neonUsers, pkg) {
			problems = append(problems, pkg+" imports neon: only source (the tenants), app (the run's one client), mode (Env.Neon) and migrate (rehearsal branches) may")
		}
	}
	slices.Sort(problems)
	return problems
}

func TestLayering(t *testing.T) {
	modePkgs := modePackages()
	if len(modePkgs) == 0 {
		t.Fatal("no mode registered")
	}
	graph := importGraph(t)
	for _, m := range append(modePkgs, internal+"app", internal+"source") {
		if _, ok := graph[m]; !ok {
			t.Fatalf("no package %s among the module's files: the graph is not what the rules think", m)
		}
	}
	for _, p := range layeringProblems(graph, modePkgs) {
		t.Error(p)
	}
}

// TestLayeringRulesCanFail: each rule catches what it is about.
func TestLayeringRulesCanFail(t *testing.T) {
	a, b := internal+"a", internal+"b"
	for _, tc := range []struct {
		name  string
		graph map[string][]string
		want  string
	}{
		{"backend", map[string][]string{a: {internal + "storage/dir"}}, a + " imports the storage backend " + internal + "storage/dir"},
		{"neon", map[string][]string{internal + "report": {internal + "neon"}}, internal + "report imports neon"},
		{"mode through a third package", map[string][]string{a: {internal + "shared"}, internal + "shared": {b}}, "mode " + a + " imports mode " + b},
	} {
		got := layeringProblems(tc.graph, []string{a, b})
		if len(got) != 1 || !strings.HasPrefix(got[0], tc.want) {
			t.Errorf("%s: problems %q, want one saying %q", tc.name, got, tc.want)
		}
	}
	if got := layeringProblems(map[string][]string{a: {internal + "storage/destination", internal + "storage"}, internal + "app": {internal + "neon", a}}, []string{a, b}); len(got) > 0 {
		t.Errorf("allowed imports: problems %q", got)
	}
}
