package syncsecrets

import (
	"strings"
	"testing"
	"time"
)

func TestNameAndSlug(t *testing.T) {
	cases := []struct{ in, name, slug string }{
		{"acme", "ACME", "acme"},
		{"Acme Corp.", "ACME_CORP", "acme-corp"},
		{"  --acme--corp--  ", "ACME_CORP", "acme-corp"},
		{"customer-0001", "CUSTOMER_0001", "customer-0001"},
		{"Müller & Söhne", "M_LLER_S_HNE", "m-ller-s-hne"},
		{"日本", "", ""},
		{"a_b", "A_B", "a-b"},
	}
	for _, c := range cases {
		if got := upperName(c.in); got != c.name {
			t.Errorf("NAME(%q) = %q, want %q", c.in, got, c.name)
		}
		if got := slug(c.in); got != c.slug {
			t.Errorf("slug(%q) = %q, want %q", c.in, got, c.slug)
		}
	}
}

func TestTemplates(t *testing.T) {
	tpl, err := parseTemplate("{{NAME}}_{{id}}_DATABASE_URL")
	if err != nil {
		t.Fatal(err)
	}
	got, empty := tpl.expand("Acme Corp", "wispy-sun-123", true)
	if got != "ACME_CORP_wispy_sun_123_DATABASE_URL" || empty != "" {
		t.Fatalf("expand = %q, %q", got, empty)
	}
	if !tpl.pattern(true).MatchString(strings.ToUpper(got)) {
		t.Fatalf("pattern %s does not match what the template produces", tpl.pattern(true))
	}
	env, _ := parseTemplate("tenant-{{slug}}")
	if got, _ := env.expand("Acme Corp", "x", false); got != "tenant-acme-corp" {
		t.Fatalf("env expand = %q", got)
	}
	if got, _ := parseTemplate("t-{{ id }}"); got.parts[1].ph != "id" {
		t.Fatalf("spaces inside braces: %+v", got.parts)
	}
	if _, empty := tpl.expand("日本", "x", true); empty != "" {
		t.Fatalf("{{id}} still tells the project apart, but %s was reported empty", empty)
	}
	byName, _ := parseTemplate("{{NAME}}_DATABASE_URL")
	if _, empty := byName.expand("日本", "x", true); empty != "{{NAME}}" {
		t.Fatalf("empty placeholder not reported: %q", empty)
	}
	for _, bad := range []string{"{{name}}_URL", "{{NAME}_URL", "X_{{foo}}", "}}X{{"} {
		if _, err := parseTemplate(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if p, _ := parseTemplate("DATABASE_URL"); p.perTenant() {
		t.Fatal("a constant template is per tenant")
	}

	// Prune's pattern: only what the template can produce.
	def, _ := parseTemplate(defaultSecretName)
	re := def.pattern(true)
	for name, want := range map[string]bool{
		"ACME_DATABASE_URL":            true,
		"ACME_CORP_2_DATABASE_URL":     true,
		"DATABASE_URL":                 false,
		"ACME_DATABASE_URL_OLD":        false,
		"ACME__DATABASE_URL":           false,
		"PGFLEET_FP_ACME_DATABASE_URL": true, // a variable name: never in a secret list
	} {
		if re.MatchString(name) != want {
			t.Errorf("pattern %s on %s: %v, want %v", re, name, !want, want)
		}
	}
	envRe := env.pattern(false)
	if !envRe.MatchString("tenant-acme-corp") || envRe.MatchString("production") || envRe.MatchString("tenant-") {
		t.Fatalf("environment pattern %s", envRe)
	}
}

func TestFingerprints(t *testing.T) {
	a := newFingerprinter("", "neon-key-1")
	b := newFingerprinter("", "neon-key-2")
	c := newFingerprinter("neon-key-1", "")
	s := a.sum("repository/o/r", "X", "postgres://u:p@h/db")
	if s == b.sum("repository/o/r", "X", "postgres://u:p@h/db") || s == c.sum("repository/o/r", "X", "postgres://u:p@h/db") {
		t.Fatal("different keys give the same fingerprint")
	}
	if s != a.sum("repository/o/r", "X", "postgres://u:p@h/db") {
		t.Fatal("not deterministic")
	}
	for _, other := range []string{a.sum("repository/o/r2", "X", "postgres://u:p@h/db"), a.sum("repository/o/r", "Y", "postgres://u:p@h/db"), a.sum("repository/o/r", "X", "postgres://u:q@h/db")} {
		if other == s {
			t.Fatal("target, name and value must all count")
		}
	}
	if strings.Contains(s, "p@h") || len(s) != 43 {
		t.Fatalf("fingerprint %q", s)
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 500, time.FixedZone("x", 3600))
	rec := encodeRecord(s, at, "owner-tag", "proj-1", "Acme Corp")
	sum, got, owner, ok := parseRecord(rec)
	if !ok || sum != s || !got.Equal(at.Truncate(time.Second)) || owner != "owner-tag" {
		t.Fatalf("record %q read back as %q %v %v", rec, sum, got, ok)
	}
	if id, name, ok := recordTenant(rec); !ok || id != "proj-1" || name != "Acme Corp" {
		t.Fatalf("tenant of %q: %q %q %v", rec, id, name, ok)
	}
	// A record from before the tenant was kept is still read.
	older := strings.Join(strings.Fields(rec)[:4], " ")
	if _, _, owner, ok := parseRecord(older); !ok || owner != "owner-tag" {
		t.Fatalf("older record %q not read", older)
	}
	if _, _, ok := recordTenant(older); ok {
		t.Fatalf("older record %q names a tenant", older)
	}
	for _, bad := range []string{"", "pgfleet-fp-v1 x", "pgfleet-fp-v2 x 2025-06-01T12:00:00Z", "pgfleet-fp-v2 x yesterday tag"} {
		if _, _, _, ok := parseRecord(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// Two configurations in one repository get different owner tags, so prune
// of one never deletes what the other wrote.
func TestOwnerTagSeparatesConfigurations(t *testing.T) {
	f := newFingerprinter("", "neon-key")
	a := f.owner("repository", "{{NAME}}_DATABASE_URL", "tenant-{{slug}}", true)
	if a != f.owner("repository", "{{NAME}}_DATABASE_URL", "tenant-{{slug}}", true) {
		t.Fatal("the tag is not stable")
	}
	for _, b := range []string{
		f.owner("repository", "{{NAME}}_DIRECT_DATABASE_URL", "tenant-{{slug}}", true),
		f.owner("repository", "{{NAME}}_DATABASE_URL", "tenant-{{slug}}", false),
		f.owner("organization", "{{NAME}}_DATABASE_URL", "tenant-{{slug}}", true),
	} {
		if a == b {
			t.Errorf("two configurations share the tag %q", a)
		}
	}
}
