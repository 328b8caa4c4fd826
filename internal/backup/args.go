package backup

import (
	"fmt"
	"slices"
	"strings"
)

// Why pgfleet keeps some pg_dump options to itself.
const (
	whyOwn       = "pgfleet sets it itself"
	whyConn      = "the connection comes from each tenant's connection string"
	whyOutput    = "pgfleet streams pg_dump's output itself (use the format and compression inputs)"
	whySnapshot  = "pgfleet exports the snapshot that pg_dump and the row counts share"
	whyPartial   = "it leaves tables or rows out of the dump, and the manifest's row counts prove every table (back up a subset with another tool)"
	whyCreate    = "a restore goes into restore-target-url, never into a database the dump would create"
	whyInterface = "it only prints help or a version"
)

// refusedLong are pg_dump's long options pg-dump-args may not hold. pg_dump
// also accepts any unambiguous abbreviation of a long option, so a name
// that starts one of these is refused too.
var refusedLong = map[string]string{
	"file": whyOutput, "format": whyOutput, "compress": whyOutput, "jobs": whyOutput,
	"dbname": whyConn, "host": whyConn, "port": whyConn, "username": whyConn, "password": whyConn, "no-password": whyConn,
	"snapshot": whySnapshot, "serializable-deferrable": whySnapshot,
	"create": whyCreate,
	"table":  whyPartial, "exclude-table": whyPartial, "schema": whyPartial, "exclude-schema": whyPartial,
	"exclude-table-data": whyPartial, "table-and-children": whyPartial, "exclude-table-and-children": whyPartial,
	"exclude-table-data-and-children": whyPartial, "schema-only": whyPartial, "data-only": whyPartial,
	"section": whyPartial, "no-unlogged-table-data": whyPartial, "statistics-only": whyPartial,
	"no-data": whyPartial, "no-schema": whyPartial, "filter": whyPartial,
	"help": whyInterface, "version": whyInterface,
}

// refusedShort are the single-letter forms.
var refusedShort = map[byte]string{
	'f': "file", 'F': "format", 'Z': "compress", 'j': "jobs",
	'd': "dbname", 'h': "host", 'p': "port", 'U': "username", 'W': "password", 'w': "no-password",
	'C': "create", 't': "table", 'T': "exclude-table", 'n': "schema", 'N': "exclude-schema",
	's': "schema-only", 'a': "data-only", '?': "help", 'V': "version",
}

// longWithValue are pg_dump's long options that take a value (after '='
// or as the next word).
var longWithValue = []string{
	"compress", "dbname", "encoding", "exclude-extension", "exclude-schema", "exclude-table",
	"exclude-table-and-children", "exclude-table-data", "exclude-table-data-and-children", "extension",
	"file", "filter", "format", "host", "include-foreign-data", "jobs", "lock-wait-timeout", "port",
	"restrict-key", "role", "rows-per-insert", "schema", "section", "snapshot", "superuser", "table",
	"table-and-children", "username",
}

// refusedNames are refusedLong's keys, sorted, so messages do not depend
// on map order.
var refusedNames = func() []string {
	names := make([]string, 0, len(refusedLong))
	for k := range refusedLong {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}()

// shortWithValue are pg_dump's single-letter options that take a value
// (the rest of the word, or the next word).
const shortWithValue = "dEefFhjnNpStTUZ"

// ParseDumpArgs splits pg-dump-args on white space and refuses the options
// pgfleet must control.
func ParseDumpArgs(s string) ([]string, error) {
	args := strings.Fields(s)
	var bad []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			bad = append(bad, "--: pg_dump takes no database name here ("+whyConn+")")
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			for _, full := range refusedNames {
				if strings.HasPrefix(full, name) && name != "" {
					bad = append(bad, fmt.Sprintf("--%s: %s", full, refusedLong[full]))
					break
				}
			}
			if !hasValue && slices.Contains(longWithValue, name) {
				i++ // the value is the next word
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for k := 1; k < len(a); k++ {
				c := a[k]
				if long, ok := refusedShort[c]; ok {
					bad = append(bad, fmt.Sprintf("-%c (--%s): %s", c, long, refusedLong[long]))
				}
				if strings.IndexByte(shortWithValue, c) >= 0 {
					if k == len(a)-1 {
						i++ // the value is the next word
					}
					break
				}
			}
		default:
			bad = append(bad, fmt.Sprintf("%q: pg_dump takes no database name here (%s)", a, whyConn))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not allowed: %s", strings.Join(bad, "; "))
	}
	return args, nil
}
