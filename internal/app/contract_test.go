package app

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pgfleet/pgfleet/internal/input"
)

// go test ./internal/app -run Contract -update rewrites action.yml's inputs
// and outputs and the README's tables from the input table.
var update = flag.Bool("update", false, "rewrite action.yml and the README tables from the input table")

// actionDescription is an input's description as action.yml gives it: the
// modes that read it first, so a workflow author sees them in the editor.
func actionDescription(modes []string, desc string) string {
	if modes == nil {
		return desc
	}
	return "[" + input.ModesText(modes) + "] " + desc
}

func repoFile(t *testing.T, name string) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, name)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// readRepoFile reads the file name at the repository's root, and returns
// its path (for -update to write it back) and its bytes.
func readRepoFile(t *testing.T, name string) (string, []byte) {
	t.Helper()
	path := repoFile(t, name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

func yamlString(s string) string { return fmt.Sprintf("%q", s) }

// actionIO renders action.yml's inputs and outputs.
func actionIO(table *input.Table) string {
	var b strings.Builder
	b.WriteString("inputs:\n")
	for _, in := range table.Inputs {
		fmt.Fprintf(&b, "  %s:\n    description: %s\n", in.Name, yamlString(actionDescription(in.Modes, in.Description)))
		if in.Required {
			b.WriteString("    required: true\n")
		} else {
			b.WriteString("    required: false\n")
		}
		if in.Default != "" {
			fmt.Fprintf(&b, "    default: %s\n", yamlString(in.Default))
		}
	}
	b.WriteString("\noutputs:\n")
	for _, o := range table.Outputs {
		fmt.Fprintf(&b, "  %s:\n    description: %s\n", o.Name, yamlString(actionDescription(o.Modes, o.Description)))
	}
	return b.String()
}

func readmeInputs(table *input.Table) string {
	var b strings.Builder
	b.WriteString("| input | modes | default | description |\n|---|---|---|---|\n")
	for _, in := range table.Inputs {
		def := ""
		if in.Default != "" {
			def = "`" + in.Default + "`"
		}
		if in.Required {
			def = "(required)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", in.Name, input.ModesText(in.Modes), def, strings.ReplaceAll(in.Description, "|", `\|`))
	}
	return b.String()
}

func readmeOutputs(table *input.Table) string {
	var b strings.Builder
	b.WriteString("| output | modes | description |\n|---|---|---|\n")
	for _, o := range table.Outputs {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", o.Name, input.ModesText(o.Modes), o.Description)
	}
	return b.String()
}

// replaceBetween swaps the text between two marker lines.
func replaceBetween(t *testing.T, s, begin, end, body string) string {
	t.Helper()
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("markers %q and %q not found", begin, end)
	}
	return s[:i+len(begin)] + "\n" + body + s[j:]
}

// TestContractActionYAML: action.yml, the public contract, declares exactly
// the table's inputs and outputs, with the same defaults, modes and
// descriptions; else the runner passes inputs the binary ignores or never
// passes one it reads.
func TestContractActionYAML(t *testing.T) {
	table := Table()
	path, b := readRepoFile(t, "action.yml")
	if *update {
		s := string(b)
		i, j := strings.Index(s, "\ninputs:\n"), strings.Index(s, "\nruns:\n")
		s = s[:i+1] + actionIO(table) + s[j:]
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		b = []byte(s)
	}
	var action struct {
		Inputs map[string]struct {
			Description string  `yaml:"description"`
			Required    bool    `yaml:"required"`
			Default     *string `yaml:"default"`
		} `yaml:"inputs"`
		Outputs map[string]struct {
			Description string `yaml:"description"`
		} `yaml:"outputs"`
		Runs struct {
			Using string `yaml:"using"`
		} `yaml:"runs"`
	}
	if err := yaml.Unmarshal(b, &action); err != nil {
		t.Fatalf("action.yml does not parse: %v", err)
	}
	for _, in := range table.Inputs {
		got, ok := action.Inputs[in.Name]
		if !ok {
			t.Errorf("input %s is read by the binary but not declared in action.yml", in.Name)
			continue
		}
		def := ""
		if got.Default != nil {
			def = *got.Default
		}
		if def != in.Default {
			t.Errorf("input %s: action.yml default %q, the table's %q", in.Name, def, in.Default)
		}
		if want := actionDescription(in.Modes, in.Description); got.Description != want {
			t.Errorf("input %s: action.yml description %q, want %q (modes and text from the table)", in.Name, got.Description, want)
		}
		if got.Required != in.Required {
			t.Errorf("input %s: action.yml required %v, the table's %v", in.Name, got.Required, in.Required)
		}
	}
	for name := range action.Inputs {
		if _, ok := table.Lookup(name); !ok {
			t.Errorf("action.yml declares input %s, which the binary never reads", name)
		}
	}
	var outputs []string
	for _, o := range table.Outputs {
		outputs = append(outputs, o.Name)
		got, ok := action.Outputs[o.Name]
		if !ok {
			t.Errorf("output %s is written by the binary but not declared in action.yml", o.Name)
		} else if want := actionDescription(o.Modes, o.Description); got.Description != want {
			t.Errorf("output %s: action.yml description %q, want %q", o.Name, got.Description, want)
		}
	}
	for name := range action.Outputs {
		if !slices.Contains(outputs, name) {
			t.Errorf("action.yml declares output %s, which the binary never writes", name)
		}
	}
	if action.Runs.Using != "docker" {
		t.Errorf("runs.using = %q, want a Docker container action", action.Runs.Using)
	}
}

// TestContractREADME: the README's inputs and outputs tables name the same
// inputs, defaults and modes as the table.
func TestContractREADME(t *testing.T) {
	table := Table()
	path, b := readRepoFile(t, "README.md")
	s := string(b)
	if *update {
		s = replaceBetween(t, s, "<!-- inputs (generated: go test ./internal/app -run Contract -update) -->", "<!-- /inputs -->", readmeInputs(table))
		s = replaceBetween(t, s, "<!-- outputs (generated) -->", "<!-- /outputs -->", readmeOutputs(table))
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(begin, end string) map[string][]string {
		i, j := strings.Index(s, begin), strings.Index(s, end)
		if i < 0 || j < i {
			t.Fatalf("README has no %s ... %s table", begin, end)
		}
		out := map[string][]string{}
		for _, line := range strings.Split(s[i+len(begin):j], "\n") {
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			if len(cells) < 3 || !strings.HasPrefix(cells[0], "`") {
				continue
			}
			out[strings.Trim(cells[0], "`")] = cells
		}
		return out
	}
	inputs := rows("<!-- inputs", "<!-- /inputs -->")
	for _, in := range table.Inputs {
		cells, ok := inputs[in.Name]
		if !ok {
			t.Errorf("README's inputs table lacks %s", in.Name)
			continue
		}
		def := strings.Trim(cells[2], "`")
		if in.Required {
			def = strings.TrimSuffix(def, "(required)")
		}
		if def != in.Default || cells[1] != input.ModesText(in.Modes) {
			t.Errorf("README: %s has default %q and modes %q; the table says %q and %q", in.Name, def, cells[1], in.Default, input.ModesText(in.Modes))
		}
		delete(inputs, in.Name)
	}
	for name := range inputs {
		t.Errorf("README lists input %s, which the binary never reads", name)
	}
	outputs := rows("<!-- outputs", "<!-- /outputs -->")
	for _, o := range table.Outputs {
		cells, ok := outputs[o.Name]
		if !ok {
			t.Errorf("README's outputs table lacks %s", o.Name)
		} else if cells[1] != input.ModesText(o.Modes) {
			t.Errorf("README: output %s has modes %q; the table says %q", o.Name, cells[1], input.ModesText(o.Modes))
		}
		delete(outputs, o.Name)
	}
	for name := range outputs {
		t.Errorf("README lists output %s, which the binary never writes", name)
	}
}
