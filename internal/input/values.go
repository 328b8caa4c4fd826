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

// def is in's default, and makes sure in is in the table: reading an input
// no mode declared is a bug, caught by any test that reads it.
func (v *Values) def(in *Input) string {
	if _, ok := v.table.Lookup(in.Name); !ok {
		panic("input " + in.Name + " is not in the table")
	}
	return in.Default
}

// Raw is the value exactly as given, "" when unset (no default, no trim).
func (v *Values) Raw(in *Input) string {
	v.def(in)
	return v.raw(in.Name)
}

// IsSet reports whether the input was given a non-blank value.
func (v *Values) IsSet(in *Input) bool { return strings.TrimSpace(v.Raw(in)) != "" }

// String is the trimmed value, or the input's default.
func (v *Values) String(in *Input) string {
	if s := strings.TrimSpace(v.Raw(in)); s != "" {
		return s
	}
	return v.def(in)
}

// Bad records a problem with an input.
func (v *Values) Bad(in *Input, format string, a ...any) {
	v.errs = append(v.errs, &Error{Input: in.Name, Problem: fmt.Sprintf(format, a...)})
}

// BadErr records err as a problem with an input, keeping it as the cause.
func (v *Values) BadErr(in *Input, err error) {
	v.errs = append(v.errs, &Error{Input: in.Name, Err: err})
}

// Int is a whole number from lo to hi; what says what it counts, for the
// message.
func (v *Values) Int(in *Input, lo, hi int, what string) int {
	s := v.String(in)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		v.Bad(in, "want a whole number from %d to %d (%s), got %q", lo, hi, what, s)
		return 0
	}
	return n
}

// Duration is a positive Go duration.
func (v *Values) Duration(in *Input) time.Duration {
	s := v.String(in)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		v.Bad(in, "want a positive Go duration like 30s, 10m or 1h30m, got %q", s)
		return 0
	}
	return d
}

// Bool is true or false (also yes/no, on/off, 1/0).
func (v *Values) Bool(in *Input) bool {
	s := strings.ToLower(v.String(in))
	switch s {
	case "", "false", "no", "0", "off":
		return false
	case "true", "yes", "1", "on":
		return true
	}
	v.Bad(in, "want true or false, got %q", s)
	return false
}

// OneOf is the value, which must be one of choices.
func (v *Values) OneOf(in *Input, choices ...string) string {
	s := strings.ToLower(v.String(in))
	for _, c := range choices {
		if s == c {
			return s
		}
	}
	v.Bad(in, "want one of %s, got %q", strings.Join(choices, ", "), s)
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
