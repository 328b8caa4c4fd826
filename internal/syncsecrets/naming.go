package syncsecrets

import (
	"fmt"
	"regexp"
	"strings"
)

// The placeholders of secret-name and environment-name.
const (
	phName = "NAME" // the project name, upper-cased, runs of other characters turned into one _
	phSlug = "slug" // the project name, lower-cased, runs of other characters turned into one -
	phID   = "id"   // the project id (its - turned into _ inside secret names)
)

// template is a parsed secret-name or environment-name: literal text and
// placeholders, in order.
type template struct {
	raw   string
	parts []part
}

type part struct {
	lit string // literal text, when ph is ""
	ph  string // a placeholder
}

var placeholder = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// parseTemplate reads a template; an unknown placeholder or a stray brace
// is an error naming what is allowed.
func parseTemplate(s string) (template, error) {
	t := template{raw: s}
	rest := s
	for rest != "" {
		loc := placeholder.FindStringSubmatchIndex(rest)
		if loc == nil {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if loc[0] > 0 {
			t.parts = append(t.parts, part{lit: rest[:loc[0]]})
		}
		ph := rest[loc[2]:loc[3]]
		switch ph {
		case phName, phSlug, phID:
		default:
			return template{}, fmt.Errorf("unknown placeholder {{%s}} in %q: use {{NAME}}, {{slug}} or {{id}}", ph, s)
		}
		t.parts = append(t.parts, part{ph: ph})
		rest = rest[loc[1]:]
	}
	for _, p := range t.parts {
		if strings.ContainsAny(p.lit, "{}") {
			return template{}, fmt.Errorf("stray brace in %q: placeholders are written {{NAME}}, {{slug}} or {{id}}", s)
		}
	}
	return t, nil
}

// perTenant reports whether the template names each tenant differently.
func (t template) perTenant() bool {
	for _, p := range t.parts {
		if p.ph != "" {
			return true
		}
	}
	return false
}

// expand fills the template for one project. inSecret turns the id's -
// into _ (a secret name allows neither - nor lower case; the caller
// upper-cases). empty names a placeholder that came out empty when every
// placeholder did: the name would then not tell the project apart.
func (t template) expand(name, id string, inSecret bool) (out, empty string) {
	var b strings.Builder
	filled := false
	defer func() {
		if filled {
			empty = ""
		}
	}()
	for _, p := range t.parts {
		var v string
		switch p.ph {
		case "":
			b.WriteString(p.lit)
			continue
		case phName:
			v = upperName(name)
		case phSlug:
			v = slug(name)
		case phID:
			v = id
			if inSecret {
				v = strings.ReplaceAll(v, "-", "_")
			}
		}
		if v == "" && empty == "" {
			empty = "{{" + p.ph + "}}"
		}
		filled = filled || v != ""
		b.WriteString(v)
	}
	return b.String(), empty
}

// pattern matches every name the template can produce: the names prune may
// touch. Secret names are matched as GitHub stores them (upper-cased).
func (t template) pattern(inSecret bool) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, p := range t.parts {
		switch p.ph {
		case "":
			lit := p.lit
			if inSecret {
				lit = strings.ToUpper(lit)
			}
			b.WriteString(regexp.QuoteMeta(lit))
		case phName:
			b.WriteString(`[A-Z0-9]+(?:_[A-Z0-9]+)*`)
		case phSlug:
			if inSecret {
				b.WriteString(`[A-Z0-9]+(?:-[A-Z0-9]+)*`)
			} else {
				b.WriteString(`[a-z0-9]+(?:-[a-z0-9]+)*`)
			}
		case phID:
			if inSecret {
				b.WriteString(`[A-Z0-9_]+`)
			} else {
				b.WriteString(`[A-Za-z0-9._-]+`)
			}
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// upperName is {{NAME}}: upper-cased, every run of characters outside
// A-Z0-9 turned into one _, trimmed.
func upperName(s string) string { return squash(strings.ToUpper(s), 'A', 'Z', '_') }

// slug is {{slug}}: lower-cased, every run of characters outside a-z0-9
// turned into one -, trimmed.
func slug(s string) string { return squash(strings.ToLower(s), 'a', 'z', '-') }

func squash(s string, lo, hi byte, sep byte) string {
	var b strings.Builder
	pending := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= lo && c <= hi || c >= '0' && c <= '9' {
			if pending && b.Len() > 0 {
				b.WriteByte(sep)
			}
			pending = false
			b.WriteByte(c)
			continue
		}
		pending = true
	}
	return b.String()
}
