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
	ordered []string // longest first, so a secret containing another is removed whole
	onAdd   func(string)
}

// New returns a Redactor that calls onAdd (say, ::add-mask::) for each new
// secret; onAdd may be nil.
func New(onAdd func(string)) *Redactor {
	return &Redactor{secrets: map[string]bool{}, onAdd: onAdd}
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
		if f != "" && !r.secrets[f] {
			r.secrets[f] = true
			added = append(added, f)
		}
	}
	if len(added) > 0 {
		r.ordered = r.ordered[:0]
		for s := range r.secrets {
			r.ordered = append(r.ordered, s)
		}
		sort.Slice(r.ordered, func(i, j int) bool { return len(r.ordered[i]) > len(r.ordered[j]) })
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
	for _, secret := range r.ordered {
		if strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, Mask)
		}
	}
	r.mu.RUnlock()
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
