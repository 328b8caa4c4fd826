package recovery

import (
	"strings"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/pgtools"
)

// TargetURL reads the input naming a database to restore into
// (restore-target-url, drill-target-url): trimmed, its password registered
// with secret as both parsers read it (before any message could carry it),
// and checked to be a connection URL pgfleet can read of a direct host, not
// a pooler (a restore's session settings need one). It returns "" when the
// input is unset; ok is false when it is set but bad (recorded in in).
func TargetURL(in *input.Values, target *input.Input, secret func(string)) (url string, ok bool) {
	url = strings.TrimSpace(in.Raw(target))
	for _, p := range pgconnect.Passwords(url) {
		secret(p)
	}
	if url == "" {
		return "", true
	}
	if _, err := pgconnect.ParseURL(url); err != nil {
		in.Bad(target, "%v", err)
		return url, false
	}
	if p := pgtools.PoolerProblem(url); p != "" {
		in.Bad(target, "%s", p)
		return url, false
	}
	return url, true
}
