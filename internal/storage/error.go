package storage

import "strings"

// Error is a Store operation that failed. It names the destination and key
// (never credentials), carries a hint for the person who must fix it when
// the cause is recognised, and unwraps to the cause, so
// errors.Is(err, ErrNotFound) and errors.Is(err, context.Canceled) work.
type Error struct {
	Op   string // "put", "get", "list", "delete", "pending", "abort"
	Dest string // the Store's String()
	Key  string // the key or prefix, "" when none
	Err  error
	Hint string // what to check, "" when nothing useful can be said
}

// Error reads "put acme/x.dump in s3://bucket/backups/: <cause> (<hint>)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Key != "" {
		b.WriteByte(' ')
		b.WriteString(e.Key)
		b.WriteString(" in")
	}
	b.WriteByte(' ')
	b.WriteString(e.Dest)
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
