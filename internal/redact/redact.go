// Package redact keeps credentials out of everything pgfleet writes. Every
// secret is registered as soon as it is known; every string bound for a log
// line, error, summary, output or report passes through Scrub.
package redact

import (
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Mask replaces a secret.
const Mask = "***"

// Redactor remembers secrets and removes them from text. Safe for
// concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets map[string]bool
	// Secrets are found by their first prefixLen bytes, so Scrub is one pass
	// over the text however many tenants' passwords are registered (a
	// thousand tenants register about 4,000 forms, and every log line,
	// summary cell and report field is scrubbed).
	byPrefix map[string][]string
	short    []string // secrets shorter than prefixLen
	onAdd    func(string)
}

const prefixLen = 4

// New returns a Redactor that calls onAdd (say, ::add-mask::) for each new
// secret; onAdd may be nil.
func New(onAdd func(string)) *Redactor {
	return &Redactor{secrets: map[string]bool{}, byPrefix: map[string][]string{}, onAdd: onAdd}
}

// Add registers a secret, and its URL-encoded forms, which is how a password
// appears inside a connection string.
func (r *Redactor) Add(secret string) {
	if secret == "" {
		return
	}
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), url.UserPassword("u", secret).String()[2:]}
	r.mu.Lock()
	var added []string
	for _, f := range forms {
		if f == "" || r.secrets[f] {
			continue
		}
		r.secrets[f] = true
		added = append(added, f)
		if len(f) < prefixLen {
			r.short = append(r.short, f)
		} else {
			r.byPrefix[f[:prefixLen]] = append(r.byPrefix[f[:prefixLen]], f)
		}
	}
	r.mu.Unlock()
	if r.onAdd != nil {
		for _, f := range added {
			r.onAdd(f)
		}
	}
}

// urlPassword catches the password of any connection string, registered or
// not, as a last line of defence.
var urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@`)

// Scrub returns s without any registered secret or URL password.
func (r *Redactor) Scrub(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	var found []string
	for i := 0; i+prefixLen <= len(s); i++ {
		for _, secret := range r.byPrefix[s[i:i+prefixLen]] {
			if strings.HasPrefix(s[i:], secret) {
				found = append(found, secret)
			}
		}
	}
	for _, secret := range r.short {
		if strings.Contains(s, secret) {
			found = append(found, secret)
		}
	}
	r.mu.RUnlock()
	// Longest first, so a secret containing another is removed whole.
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	for _, secret := range found {
		s = strings.ReplaceAll(s, secret, Mask)
	}
	return urlPassword.ReplaceAllString(s, "${1}"+Mask+"@")
}

// Writer wraps w so everything written through it is scrubbed. Callers write
// whole lines: a secret split across two writes would not be recognised.
func (r *Redactor) Writer(w io.Writer) io.Writer { return &writer{r: r, w: w} }

type writer struct {
	r  *Redactor
	w  io.Writer
	mu sync.Mutex
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := io.WriteString(w.w, w.r.Scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
