package redact

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestScrubRemovesRegisteredSecretsInEveryForm(t *testing.T) {
	var masked []string
	r := New(func(s string) { masked = append(masked, s) })
	r.Add("p@ss/w:rd")
	r.Add("neon-key-123")
	in := "key neon-key-123 url postgres://u:p%40ss%2Fw:rd@h/db raw p@ss/w:rd"
	got := r.Scrub(in)
	for _, leak := range []string{"neon-key-123", "p@ss/w:rd", "p%40ss"} {
		if strings.Contains(got, leak) {
			t.Fatalf("Scrub(%q) = %q still contains %q", in, got, leak)
		}
	}
	if len(masked) < 2 {
		t.Fatalf("onAdd called for %v, want every form masked", masked)
	}
}

func TestScrubRemovesUnregisteredURLPasswords(t *testing.T) {
	got := New(nil).Scrub("failed: postgresql://alice:s3cret@db.example.com:5432/app?sslmode=require")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "alice:***@db.example.com") {
		t.Fatalf("got %q", got)
	}
}

func TestWriterScrubs(t *testing.T) {
	var buf bytes.Buffer
	r := New(nil)
	r.Add("hunter22")
	fmt.Fprintf(r.Writer(&buf), "password is hunter22\n")
	if buf.String() != "password is ***\n" {
		t.Fatalf("got %q", buf.String())
	}
}

func TestScrubOverlappingAndShortSecrets(t *testing.T) {
	r := New(nil)
	r.Add("abcd")     // a prefix of the next one
	r.Add("abcdefgh") // must be removed whole, not leave "efgh"
	r.Add("xy")       // shorter than the index prefix
	got := r.Scrub("1 abcdefgh 2 abcd 3 xy 4")
	if got != "1 *** 2 *** 3 *** 4" {
		t.Fatalf("got %q", got)
	}
}
