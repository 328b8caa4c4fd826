package report

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxErrorRunes is how much of an error a summary table cell shows.
const maxErrorRunes = 300

// mdEscaper makes user text inert in Markdown (table cells included) and
// HTML: no pipes that split cells, no code spans, emphasis, links, math or
// tags. One pass, so escapes are not escaped again.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`,
	"`", "\\`",
	"|", `\|`,
	"*", `\*`,
	"_", `\_`,
	"[", `\[`,
	"]", `\]`,
	"~", `\~`,
	"$", `\$`,
	"<", "&lt;",
	">", "&gt;",
	"&", "&amp;",
)

// md renders user text as one line of inert Markdown.
func md(s string) string {
	return mdEscaper.Replace(OneLine(s))
}

// mdCut is md of s shortened to at most n runes.
func mdCut(s string, n int) string {
	return md(truncate(OneLine(s), n))
}

// OneLine turns newlines, tabs and other control or direction-changing
// characters into spaces and collapses runs of white space.
func OneLine(s string) string {
	clean := func(r rune) rune {
		if unicode.IsControl(r) || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return ' '
		}
		return r
	}
	return strings.Join(strings.Fields(strings.Map(clean, s)), " ")
}

// truncate shortens s to at most n runes, ending with "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// cutBytes shortens s to at most n bytes without splitting a UTF-8 sequence.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// human formats a duration for people: 850ms, 12.3s, 1m12s, 2h5m.
func human(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	s := d.Round(time.Minute).String() // "2h5m0s"
	return strings.TrimSuffix(s, "0s")
}

// thousands formats n with comma separators: 30,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Plural returns "1 tenant", "2 tenants", "1,000 tenants".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}
