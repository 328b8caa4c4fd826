// Package redact keeps credentials out of everything pgfleet writes: the one
// redaction mechanism of the project, with one mask. Two rules:
//
//   - By structure: the password of any connection string (URL userinfo,
//     a password= parameter) is replaced wherever it appears, registered or
//     not, however short.
//   - By value: every registered credential of at least MinLen bytes (and its
//     URL-encoded forms, and each line of a multi-line one) is replaced
//     wherever it appears, and handed to onAdd (::add-mask:: in Actions).
//
// A credential shorter than MinLen is not masked in prose: replacing every
// "p" would garble every message and, by the gaps it leaves, reveal the
// password. It still never appears in a URL.
package redact

import (
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Mask replaces a credential.
const Mask = "***"

// MinLen is the shortest credential masked as a whole value.
const MinLen = 6

// prefixLen is how many leading bytes index a secret (<= MinLen).
const prefixLen = 4

// Redactor remembers credentials and removes them from text. Safe for
// concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets map[string]bool
	// Secrets are found by their first prefixLen bytes, so Scrub is one pass
	// over the text however many tenants' passwords are registered (a
	// thousand tenants register about 4,000 forms, and every log line,
	// summary cell and report field is scrubbed).
	byPrefix map[string][]string
	onAdd    func(string)
}

// New returns a Redactor that calls onAdd (say, ::add-mask::) once for each
// new value it will mask; onAdd may be nil. onAdd is never given a line
// break: a multi-line credential is handed over line by line.
func New(onAdd func(string)) *Redactor {
	return &Redactor{secrets: map[string]bool{}, byPrefix: map[string][]string{}, onAdd: onAdd}
}

// Add registers a credential, with the forms it takes inside a connection
// string, and each of its lines.
func (r *Redactor) Add(secret string) {
	if secret == "" {
		return
	}
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), url.UserPassword("u", secret).String()[2:]}
	for _, line := range strings.Split(strings.ReplaceAll(secret, "\r", "\n"), "\n") {
		forms = append(forms, strings.TrimSpace(line))
	}
	r.mu.Lock()
	var added []string
	for _, f := range forms {
		if len(f) < MinLen || r.secrets[f] {
			continue
		}
		r.secrets[f] = true
		r.byPrefix[f[:prefixLen]] = append(r.byPrefix[f[:prefixLen]], f)
		if !strings.ContainsAny(f, "\r\n") {
			added = append(added, f)
		}
	}
	r.mu.Unlock()
	if r.onAdd != nil {
		for _, f := range added {
			r.onAdd(f)
		}
	}
}

var (
	// urlPassword is the password of any URL's userinfo.
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s]*)@`)
	// paramPassword is a password given as a parameter: ?password=...,
	// &password=..., or password=... in a key/value connection string.
	paramPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'"]+)`)
)

// placeholder is how pgfleet's own messages spell a password in a template
// URL; it is left as is so the messages read normally.
const placeholder = "<password>"

// Scrub returns s without any registered credential or connection-string
// password.
func (r *Redactor) Scrub(s string) string {
	if r != nil {
		s = r.scrubValues(s)
	}
	s = urlPassword.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlPassword.FindStringSubmatch(m)
		if sub[2] == placeholder {
			return m
		}
		return sub[1] + Mask + "@"
	})
	return paramPassword.ReplaceAllStringFunc(s, func(m string) string {
		sub := paramPassword.FindStringSubmatch(m)
		if sub[2] == placeholder || sub[2] == Mask {
			return m
		}
		return sub[1] + Mask
	})
}

func (r *Redactor) scrubValues(s string) string {
	r.mu.RLock()
	var found []string
	for i := 0; i+prefixLen <= len(s); i++ {
		for _, secret := range r.byPrefix[s[i:i+prefixLen]] {
			if strings.HasPrefix(s[i:], secret) {
				found = append(found, secret)
			}
		}
	}
	r.mu.RUnlock()
	// Longest first, so a secret containing another is removed whole.
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	for _, secret := range found {
		s = strings.ReplaceAll(s, secret, Mask)
	}
	return s
}

// Writer wraps w so everything written through it is scrubbed. Callers write
// whole lines: a secret split across two writes would not be recognised.
// Each Write is one Write to w, so a w that serialises writes keeps lines
// whole.
func (r *Redactor) Writer(w io.Writer) io.Writer { return writer{r: r, w: w} }

type writer struct {
	r *Redactor
	w io.Writer
}

func (w writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.w, w.r.Scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
