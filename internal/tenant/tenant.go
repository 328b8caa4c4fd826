// Package tenant describes one tenant database and the sources that find them.
package tenant

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tenant is one customer database. ID is stable (a Neon project id, or the
// name given in database-urls) and is what sharding partitions on.
type Tenant struct {
	ID   string // Neon project id, or the explicit name for database-urls
	Name string // human name (Neon project name)

	// URL is the connection string, password included. It is a credential:
	// never format it; use String.
	URL string

	// Resolve, when set, fetches URL just before the tenant is worked on. A
	// source whose connection strings cost an API call each (Neon) defers
	// them this way, so tenants that never start (canary failed, max-failures,
	// filtered out) cost nothing.
	Resolve func(ctx context.Context) (string, error) `json:"-"`

	// StorageBytes is the size of the tenant's data as its source knows it
	// (Neon's synthetic_storage_size); 0 when unknown.
	StorageBytes int64 `json:"-"`
}

// ProjectID is the tenant's project id as the projects input and the
// failed-projects output give it: its ID, or its name where it has none
// (database-urls: the name is the id).
func (t Tenant) ProjectID() string {
	if t.ID != "" {
		return t.ID
	}
	return t.Name
}

// String names the tenant for humans without any credential:
// "name (id, host/db)".
func (t Tenant) String() string { return printable(t.label()) }

func (t Tenant) label() string {
	where := HostDB(t.URL)
	label := t.Name
	if label == "" {
		label = t.ID
	}
	switch {
	case label == t.ID && where == "":
		return label
	case label == t.ID:
		return fmt.Sprintf("%s (%s)", label, where)
	case where == "":
		return fmt.Sprintf("%s (%s)", label, t.ID)
	default:
		return fmt.Sprintf("%s (%s, %s)", label, t.ID, where)
	}
}

// HostDB returns "host/db" of a connection URL, or "" when it has none. It
// reads only what follows the userinfo's last '@', so it never includes a
// password however the password is written. It is printable: invalid
// UTF-8 and control characters (a percent-encoded database name can hold
// any byte) become U+FFFD.
func HostDB(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 && !strings.Contains(rest[i:], "@") {
		rest = rest[:i]
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	hostport, db, _ := strings.Cut(rest, "/")
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "" {
		return ""
	}
	if u, err := url.PathUnescape(db); err == nil {
		db = u
	}
	return printable(host + "/" + trimSlash(db))
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

// Password returns the password in a connection URL, or "". libpq and pgx
// also take it as a query parameter (?password=...), which then overrides
// the one in the userinfo, so that one is returned when both are set.
func Password(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if p := u.Query().Get("password"); p != "" {
		return p
	}
	if u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}
