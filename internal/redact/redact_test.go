package redact

import (
	"bytes"
	"fmt"
	"slices"
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

func TestScrubOverlappingSecrets(t *testing.T) {
	r := New(nil)
	r.Add("abcdef")   // a prefix of the next one
	r.Add("abcdefgh") // must be removed whole, not leave "gh"
	got := r.Scrub("1 abcdefgh 2 abcdef 3")
	if got != "1 *** 2 *** 3" {
		t.Fatalf("got %q", got)
	}
}

// A one-letter password must not garble prose (and reveal itself by the
// gaps), yet never appear in a URL.
func TestShortSecretKeptOutOfURLsOnly(t *testing.T) {
	var masked []string
	r := New(func(s string) { masked = append(masked, s) })
	r.Add("p")
	msg := "pgfleet: migrations-dir: relative paths are from the repository root"
	if got := r.Scrub(msg); got != msg {
		t.Errorf("prose garbled: %q", got)
	}
	if got := r.Scrub("connect postgres://u:p@127.0.0.1:1/x failed"); got != "connect postgres://u:***@127.0.0.1:1/x failed" {
		t.Errorf("URL password kept: %q", got)
	}
	if len(masked) != 0 {
		t.Errorf("short secret handed to the runner's mask (it would garble the log): %q", masked)
	}
}

func TestMultiLineSecretMaskedLineByLine(t *testing.T) {
	var masked []string
	r := New(func(s string) { masked = append(masked, s) })
	r.Add("first-line\nsecond-line")
	for _, m := range masked {
		if strings.ContainsAny(m, "\r\n") {
			t.Errorf("onAdd given a line break: %q (::add-mask:: takes one line)", m)
		}
	}
	for _, want := range []string{"first-line", "second-line"} {
		if !slices.Contains(masked, want) {
			t.Errorf("line %q not handed to onAdd: %q", want, masked)
		}
	}
	if got := r.Scrub("a second-line b"); got != "a *** b" {
		t.Errorf("got %q", got)
	}
}

func TestPasswordParametersAndPlaceholders(t *testing.T) {
	r := New(nil)
	cases := map[string]string{
		"host=h password=hunter2 dbname=x":                   "host=h password=*** dbname=x",
		"postgres://h/db?sslmode=require&password=pw":        "postgres://h/db?sslmode=require&password=***",
		"want name=postgres://<user>:<password>@<host>/<db>": "want name=postgres://<user>:<password>@<host>/<db>",
	}
	for in, want := range cases {
		if got := r.Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
}
