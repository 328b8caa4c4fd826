package input

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Error says which input is wrong and what would be right. Err is the
// cause when there is one (as in os.PathError): a check that failed on the
// input's account keeps what it met, for errors.Is and errors.As.
type Error struct {
	Input   string
	Problem string // what is wrong and what would be right; "" = Err's text
	Err     error
}

func (e *Error) Error() string {
	if e.Problem == "" && e.Err != nil {
		return fmt.Sprintf("input %s: %v", e.Input, e.Err)
	}
	return fmt.Sprintf("input %s: %s", e.Input, e.Problem)
}

func (e *Error) Unwrap() error { return e.Err }

// Values reads one run's inputs, typed, with the table's defaults. Problems
// accumulate, each an *Error, so a user sees every bad input at once; Err
// returns them joined.
type Values struct {
	table *Table
	raw   func(name string) string // "" when unset
	errs  []error
}

// NewValues reads inputs through raw, which returns an input's value as
// given (flag, INPUT_<NAME> or the input's Env variable), "" when unset.
func NewValues(t *Table, raw func(name string) string) *Values {
	return &Values{table: t, raw: raw}
}

func (v *Values) def(name string) string {
	in, ok := v.table.Lookup(name)
	if !ok {
		panic("input " + name + " is not in the table")
	}
	return in.Default
}

// Raw is the value exactly as given, "" when unset (no default, no trim).
func (v *Values) Raw(name string) string {
	v.def(name)
	return v.raw(name)
}

// IsSet reports whether the input was given a non-blank value.
func (v *Values) IsSet(name string) bool { return strings.TrimSpace(v.Raw(name)) != "" }

// String is the trimmed value, or the input's default.
func (v *Values) String(name string) string {
	if s := strings.TrimSpace(v.Raw(name)); s != "" {
		return s
	}
	return v.def(name)
}

// Bad records a problem with an input.
func (v *Values) Bad(name, format string, a ...any) {
	v.errs = append(v.errs, &Error{Input: name, Problem: fmt.Sprintf(format, a...)})
}

// BadErr records err as a problem with an input, keeping it as the cause.
func (v *Values) BadErr(name string, err error) {
	v.def(name)
	v.errs = append(v.errs, &Error{Input: name, Err: err})
}

// Int is a whole number from lo to hi; what says what it counts, for the
// message.
func (v *Values) Int(name string, lo, hi int, what string) int {
	s := v.String(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		v.Bad(name, "want a whole number from %d to %d (%s), got %q", lo, hi, what, s)
		return 0
	}
	return n
}

// Duration is a positive Go duration.
func (v *Values) Duration(name string) time.Duration {
	s := v.String(name)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		v.Bad(name, "want a positive Go duration like 30s, 10m or 1h30m, got %q", s)
		return 0
	}
	return d
}

// Bool is true or false (also yes/no, on/off, 1/0).
func (v *Values) Bool(name string) bool {
	s := strings.ToLower(v.String(name))
	switch s {
	case "", "false", "no", "0", "off":
		return false
	case "true", "yes", "1", "on":
		return true
	}
	v.Bad(name, "want true or false, got %q", s)
	return false
}

// OneOf is the value, which must be one of choices.
func (v *Values) OneOf(name string, choices ...string) string {
	s := strings.ToLower(v.String(name))
	for _, c := range choices {
		if s == c {
			return s
		}
	}
	v.Bad(name, "want one of %s, got %q", strings.Join(choices, ", "), s)
	return ""
}

// Err is every problem recorded, joined; nil when there were none.
func (v *Values) Err() error { return errors.Join(v.errs...) }

// Split unwraps errors.Join trees into their leaves: one problem each.
func Split(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Split(e)...)
		}
		return out
	}
	return []error{err}
}
