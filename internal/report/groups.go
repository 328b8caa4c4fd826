package report

import (
	"cmp"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// group is tenants that share a key (an error pattern, a skip reason), in
// the order given.
type group struct {
	key     string
	members []entry
}

// groupBy groups entries by key, the largest group first, ties by key.
// It is the one way the summary folds many tenants into a few lines:
// skipped tenants by reason, failed ones by error.
func groupBy(entries []entry, key func(entry) string) []group {
	index := map[string]int{}
	var groups []group
	for _, e := range entries {
		k := key(e)
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, group{key: k})
		}
		groups[i].members = append(groups[i].members, e)
	}
	slices.SortStableFunc(groups, func(a, b group) int {
		return cmp.Or(cmp.Compare(len(b.members), len(a.members)), strings.Compare(a.key, b.key))
	})
	return groups
}

// FailureKey tells failures apart by what went wrong rather than by whom:
// two failed (or cancelled) tenants have the same key when their errors
// differ only in the tenant's own id, name, host, database or user, or in a
// timestamp. It is for counting kinds of failure (the console caps its
// annotations with it), not for display: it is not scrubbed.
func FailureKey(res fleet.Result) string {
	msg := ""
	if res.Err != nil {
		msg = res.Err.Error()
	}
	return string(res.Status) + ": " + errorPattern(OneLine(msg), ownWords(res.Tenant, nil))
}

// What a pattern shows in place of what differs between tenants, in the
// order the summary explains them.
const (
	asTenant   = "<tenant>"
	asEndpoint = "<endpoint>"
	asHost     = "<host>"
	asDatabase = "<database>"
	asUser     = "<user>"
	asAddress  = "<address>"
	asTime     = "<time>"
)

var placeholders = []string{asTenant, asEndpoint, asHost, asDatabase, asUser, asAddress, asTime}

// placeholder is a word of one tenant's and what it reads as in a pattern.
type placeholder struct{ word, as string }

// ownWords are the words of an error that belong to one tenant, longest
// first so a host is replaced before an id it contains. Each passes through
// scrub (nil for none) so they match a scrubbed error.
func ownWords(t tenant.Tenant, scrub func(string) string) []placeholder {
	if scrub == nil {
		scrub = func(s string) string { return s }
	}
	host, db, _ := strings.Cut(tenant.HostDB(t.URL), "/")
	words := []placeholder{
		{t.ID, asTenant}, {t.Name, asTenant}, {host, asHost}, {db, asDatabase},
	}
	if u, err := url.Parse(t.URL); err == nil && u.User != nil {
		words = append(words, placeholder{u.User.Username(), asUser})
	}
	if label, _, ok := strings.Cut(host, "."); ok && strings.IndexFunc(label, unicode.IsLetter) >= 0 {
		// A Neon endpoint id (ep-cool-darkness-123456) appears on its own
		// in some errors; an IP address's first number is not a word.
		words = append(words, placeholder{strings.TrimSuffix(label, "-pooler"), asEndpoint})
	}
	out := words[:0]
	for _, w := range words {
		// A one-letter word would turn up inside ordinary prose.
		if w.word = scrub(w.word); utf8.RuneCountInString(w.word) >= 2 {
			out = append(out, w)
		}
	}
	slices.SortStableFunc(out, func(a, b placeholder) int { return cmp.Compare(len(b.word), len(a.word)) })
	return out
}

// variableRes match what differs between tenants of one run without being
// a tenant's own word: timestamps (RFC 3339, and backup keys'
// 20060102T150405Z), and the addresses their hosts resolved to (pgx writes
// "host (address)").
var variableRes = []struct {
	re *regexp.Regexp
	as string
}{
	{regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?|\b\d{8}T\d{6}Z\b`), asTime},
	{regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b|\(\[?[0-9a-fA-F]*:[0-9a-fA-F:]*:[0-9a-fA-F]*\]?\)`), asAddress},
}

// errorPattern is msg with the tenant's own words, where they stand as
// whole words, timestamps and addresses replaced by placeholders.
func errorPattern(msg string, words []placeholder) string {
	msg = replaceWords(msg, words)
	for _, v := range variableRes {
		msg = v.re.ReplaceAllStringFunc(msg, func(m string) string {
			if strings.HasPrefix(m, "(") {
				return "(" + v.as + ")"
			}
			return v.as
		})
	}
	return msg
}

// replaceWords replaces each whole-word occurrence of words in msg.
func replaceWords(msg string, words []placeholder) string {
	var b strings.Builder
	for i := 0; i < len(msg); {
		matched := false
		if i == 0 || !isWordByte(msg[i-1]) {
			for _, w := range words {
				end := i + len(w.word)
				if strings.HasPrefix(msg[i:], w.word) && (end == len(msg) || !isWordByte(msg[end])) {
					b.WriteString(w.as)
					i = end
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(msg[i])
			i++
		}
	}
	return b.String()
}

// isWordByte is a byte that continues a name: letters, digits, '_' and
// UTF-8 continuation or lead bytes. '-' and '.' end a word, so "t01" is
// found in "t01-pooler" but not in "t010".
func isWordByte(c byte) bool {
	return c == '_' || c >= 0x80 || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
