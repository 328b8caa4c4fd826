package app

import (
	"os/exec"
	"reflect"
	"slices"
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

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// TestSpineImportsNoMode: the runner and the report know modes only through
// the interface, and no mode imports another, so adding a mode is its
// package plus one line in the registry.
func TestSpineImportsNoMode(t *testing.T) {
	modePkgs := modePackages()
	if len(modePkgs) == 0 {
		t.Fatal("no mode registered")
	}
	for _, spine := range []string{"github.com/pgfleet/pgfleet/internal/report", "github.com/pgfleet/pgfleet/internal/fleet", "github.com/pgfleet/pgfleet/internal/mode"} {
		for _, d := range deps(t, spine) {
			if slices.Contains(modePkgs, d) {
				t.Errorf("%s imports the mode package %s", spine, d)
			}
		}
	}
	for _, m := range modePkgs {
		for _, d := range deps(t, m) {
			if d != m && slices.Contains(modePkgs, d) {
				t.Errorf("mode %s imports mode %s", m, d)
			}
		}
	}
}
