// Package input is pgfleet's one table of inputs: every action input, CLI
// flag and --help line is generated from the Input values declared here
// (shared ones) and by each mode (its own). action.yml and the README's
// inputs table are checked against it by a test.
package input

import (
	"fmt"
	"slices"
	"strings"
)

// Input is one action input, which is also a CLI flag of the same name.
// Each is declared once, as a package-level *Input (the shared ones here, a
// mode's in its package), and read by that value: Values.String(in).
type Input struct {
	Name        string
	Default     string // as action.yml and --help show it; "" = none
	Description string
	// Modes that read this input; nil means every mode. The table merges
	// the same input declared by several modes into one entry.
	Modes []string
	// Env is an environment variable also read when neither the flag nor
	// INPUT_<NAME> is set (NEON_API_KEY keeps a key off a command line).
	Env    string
	Secret bool // a credential: masked as soon as it is read
	Bool   bool // a switch: --name alone means true on the CLI
	// Required means the run cannot go without it (action.yml's required).
	Required bool
}

// Output is one action output.
type Output struct {
	Name        string
	Description string
	Modes       []string // nil = every mode
}

// UsedBy reports whether mode reads this input.
func (in Input) UsedBy(mode string) bool { return in.Modes == nil || slices.Contains(in.Modes, mode) }

// UsedBy reports whether mode sets this output.
func (o Output) UsedBy(mode string) bool { return o.Modes == nil || slices.Contains(o.Modes, mode) }

// Table is every input of every mode, by name.
type Table struct {
	Inputs  []Input // shared first, then each mode's in the order declared
	Outputs []Output
	Modes   []string
	byName  map[string]int
}

// ModeDecl is what the table needs to know of a mode.
type ModeDecl struct {
	Name    string
	Inputs  []*Input
	Outputs []Output
}

// NewTable merges the shared inputs and outputs with each mode's. A mode's
// input gets Modes = [that mode]; an input declared by several modes must
// agree in everything but Modes. It panics on a conflict: that is a bug in
// the declarations, caught by every test that builds the table.
func NewTable(modes []ModeDecl) *Table {
	t := &Table{byName: map[string]int{}}
	for _, m := range modes {
		t.Modes = append(t.Modes, m.Name)
	}
	for _, decl := range Shared {
		in := *decl
		if decl == Mode {
			in.Description += " " + strings.Join(t.Modes, ", ") + "."
		}
		t.add(in)
	}
	for _, m := range modes {
		for _, decl := range m.Inputs {
			in := *decl
			in.Modes = []string{m.Name}
			t.add(in)
		}
	}
	outs := map[string]int{}
	for _, o := range SharedOutputs {
		outs[o.Name] = len(t.Outputs)
		t.Outputs = append(t.Outputs, o)
	}
	for _, m := range modes {
		for _, o := range m.Outputs {
			if i, ok := outs[o.Name]; ok {
				if t.Outputs[i].Description != o.Description || t.Outputs[i].Modes == nil {
					panic(fmt.Sprintf("output %s declared twice with different descriptions", o.Name))
				}
				t.Outputs[i].Modes = append(t.Outputs[i].Modes, m.Name)
				continue
			}
			o.Modes = []string{m.Name}
			outs[o.Name] = len(t.Outputs)
			t.Outputs = append(t.Outputs, o)
		}
	}
	return t
}

func (t *Table) add(in Input) {
	i, ok := t.byName[in.Name]
	if !ok {
		t.byName[in.Name] = len(t.Inputs)
		t.Inputs = append(t.Inputs, in)
		return
	}
	prev := t.Inputs[i]
	if prev.Modes == nil || !sameButModes(prev, in) {
		panic(fmt.Sprintf("input %s declared twice, differently", in.Name))
	}
	t.Inputs[i].Modes = append(slices.Clone(prev.Modes), in.Modes...)
}

// Lookup returns the input named name.
func (t *Table) Lookup(name string) (Input, bool) {
	i, ok := t.byName[name]
	if !ok {
		return Input{}, false
	}
	return t.Inputs[i], true
}

// For lists the inputs mode reads, in table order.
func (t *Table) For(mode string) []Input { return usedBy(t.Inputs, mode) }

// OutputsFor lists the outputs mode sets.
func (t *Table) OutputsFor(mode string) []Output { return usedBy(t.Outputs, mode) }

// usedBy keeps, in order, the inputs or outputs that mode uses.
func usedBy[T interface{ UsedBy(string) bool }](all []T, mode string) []T {
	var out []T
	for _, x := range all {
		if x.UsedBy(mode) {
			out = append(out, x)
		}
	}
	return out
}

// ModesText is "every mode" or "migrate, backup".
func ModesText(modes []string) string {
	if modes == nil {
		return "all"
	}
	return strings.Join(modes, ", ")
}

func sameButModes(a, b Input) bool {
	a.Modes, b.Modes = nil, nil
	return fmt.Sprint(a) == fmt.Sprint(b)
}
