package input

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrHelp is returned by ParseArgs when --help was asked for.
var ErrHelp = flag.ErrHelp

// ParseArgs reads "pgfleet <mode> --name=value --name value --switch" with
// the standard library's flag parser: every input is a flag of the same
// name. It returns the flags that were given, by input name (mode included
// when given as the first argument or as --mode).
func (t *Table) ParseArgs(args []string) (map[string]string, error) {
	set := map[string]string{}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		set["mode"] = args[0]
		args = args[1:]
	}
	fs := flag.NewFlagSet("pgfleet", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; --help is generated
	for _, in := range t.Inputs {
		fs.Var(&flagValue{name: in.Name, set: set, isBool: in.Bool}, in.Name, in.Description)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return set, ErrHelp
		}
		return nil, fmt.Errorf("%v (pgfleet --help lists the flags)", err)
	}
	if rest := fs.Args(); len(rest) > 0 {
		// Not quoted: it may be the second word of an unquoted secret.
		return nil, fmt.Errorf("unexpected argument after the flags (%d left over): give the mode first, then --flags, and quote a value with spaces", len(rest))
	}
	if mode, ok := set["mode"]; ok {
		for name := range set {
			if in, _ := t.Lookup(name); !in.UsedBy(mode) && t.knowsMode(mode) {
				return nil, fmt.Errorf("flag --%s is not used by mode %s (it is for %s)", name, mode, ModesText(in.Modes))
			}
		}
	}
	return set, nil
}

func (t *Table) knowsMode(mode string) bool {
	for _, m := range t.Modes {
		if m == mode {
			return true
		}
	}
	return false
}

// flagValue stores a flag's text under its input name.
type flagValue struct {
	name   string
	set    map[string]string
	isBool bool
}

func (f *flagValue) String() string { return "" }

func (f *flagValue) Set(s string) error {
	f.set[f.name] = s
	return nil
}

// IsBoolFlag lets "--dry-run" stand alone (flag's convention for switches;
// "--dry-run=false" turns one off).
func (f *flagValue) IsBoolFlag() bool { return f.isBool }

// Help is the --help text: for one mode its inputs, else every mode and
// every input.
func (t *Table) Help(mode string, synopsis map[string]string) string {
	var b strings.Builder
	b.WriteString("pgfleet: operate on a fleet of tenant Postgres databases (one Neon project per customer).\n\n")
	if mode == "" {
		b.WriteString("Usage:\n  pgfleet <mode> [--input=value ...]\n  pgfleet <mode> --help\n\nModes:\n")
		for _, m := range t.Modes {
			fmt.Fprintf(&b, "  %-13s %s\n", m, synopsis[m])
		}
		// Not a mode (no inputs, no fleet), but a command a workflow's last
		// job runs; listed so --help shows everything the binary does.
		b.WriteString("\nCommands:\n  report merge  Merge the JSON reports of a workflow's jobs into one job summary (pgfleet report merge --help).\n")
	} else {
		fmt.Fprintf(&b, "Usage:\n  pgfleet %s [--input=value ...]\n\n%s\n", mode, synopsis[mode])
	}
	b.WriteString("\nEvery action input is a flag of the same name; in Actions the INPUT_<NAME>\nvariables the runner sets are read. A flag wins over the variable.\n\nInputs:\n")
	for _, in := range t.Inputs {
		if mode != "" && !in.UsedBy(mode) {
			continue
		}
		head := "  --" + in.Name
		if in.Default != "" {
			head += " (default " + in.Default + ")"
		}
		if mode == "" && in.Modes != nil {
			head += " [" + ModesText(in.Modes) + "]"
		}
		b.WriteString(head + "\n")
		b.WriteString(wrap(in.Description, "      ", 78))
	}
	b.WriteString("\nOutputs:\n")
	for _, o := range t.Outputs {
		if mode != "" && !o.UsedBy(mode) {
			continue
		}
		fmt.Fprintf(&b, "  %s\n%s", o.Name, wrap(o.Description, "      ", 78))
	}
	b.WriteString("\nExit status: 0 every tenant succeeded or was up to date; 1 a tenant failed,\nlisting tenants failed or the run was cancelled; 2 invalid input (nothing was\ntouched).\n")
	return b.String()
}

// wrap breaks text into lines of at most width columns, each indented.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, w := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	if len(line) > len(indent) {
		b.WriteString(line + "\n")
	}
	return b.String()
}
