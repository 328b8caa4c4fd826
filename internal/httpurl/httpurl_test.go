package httpurl

import "testing"

func TestParse(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://console.neon.tech/api/v2": true,
		"http://127.0.0.1:9000":            true,
		"https://api.github.com/":          true,
		"":                                 false,
		"console.neon.tech/api/v2":         false, // no scheme
		"ftp://example.com":                false,
		"https://":                         false, // no host
		"https:/path":                      false,
		"http://[::1":                      false, // does not parse
		"postgres://u:p@h/db":              false,
	} {
		u, ok := Parse(raw)
		if ok != want || (ok && u == nil) || (!ok && u != nil) {
			t.Errorf("Parse(%q) = %v, %v; want ok %v", raw, u, ok, want)
		}
	}
	if u, _ := Parse("https://h:8443/p?q=1"); u.Host != "h:8443" || u.Path != "/p" || u.RawQuery != "q=1" {
		t.Errorf("Parse keeps the URL's parts: %+v", u)
	}
}
