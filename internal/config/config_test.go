package config

import (
	"errors"

	"github.com/pgfleet/pgfleet/internal/input"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// load reads the shared inputs from a map; unset inputs are "".
func load(m map[string]string) (Config, error) {
	v := input.NewValues(input.NewTable(nil), func(name string) string { return m[name] })
	c := Load(v, Files{})
	return c, v.Err()
}

// with returns a copy of base with the overrides applied.
func with(base map[string]string, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// minimal is the smallest valid input set using the Neon API.
var minimal = map[string]string{"mode": "migrate", "neon-api-key": "napi_testkey"}

// inputErrors flattens a (joined) error into the *input.Errors it holds.
func inputErrors(t *testing.T, err error) []*input.Error {
	t.Helper()
	var out []*input.Error
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if ie, ok := e.(*input.Error); ok {
			out = append(out, ie)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			t.Errorf("error %q (%T) is not an *input.Error", e, e)
		}
	}
	walk(err)
	return out
}

func inputNames(ies []*input.Error) []string {
	var names []string
	for _, ie := range ies {
		names = append(names, ie.Input)
	}
	sort.Strings(names)
	return names
}

func TestLoadDefaults(t *testing.T) {
	c, err := load((minimal))
	if err != nil {
		t.Fatalf("Load(minimal) = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Concurrency", c.Concurrency, 10},
		{"TenantTimeout", c.TenantTimeout, 10 * time.Minute},
		{"MaxFailures", c.MaxFailures, 0},
		{"CanaryCount", c.CanaryCount, 0},
		{"CanaryGlobs", len(c.CanaryGlobs), 0},
		{"Neon.APIKey", c.Neon.APIKey, "napi_testkey"},
		{"Neon.APIURL", c.Neon.APIURL, "https://console.neon.tech/api/v2"},
		{"Neon.Database", c.Neon.Database, "neondb"},
		{"Neon.Role", c.Neon.Role, "neondb_owner"},
		{"Neon.Branch", c.Neon.Branch, ""},
		{"Neon.OrgID", c.Neon.OrgID, ""},
		{"Neon.RequestsPerMinute", c.Neon.RequestsPerMinute, 600},
		{"DatabaseURLs", len(c.DatabaseURLs), 0},
		{"Selector.Shard.Index", c.Selector.Shard.Index, 1},
		{"Selector.Shard.Count", c.Selector.Shard.Count, 1},
		{"Selector.Include", len(c.Selector.Include), 0},
		{"Selector.Exclude", len(c.Selector.Exclude), 0},
		{"ReportFile", c.ReportFile, ""},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
}

func TestLoadValidValues(t *testing.T) {
	tests := []struct {
		name  string
		over  map[string]string
		check func(t *testing.T, c Config)
	}{
		{"concurrency bounds", map[string]string{"concurrency": "1000"}, func(t *testing.T, c Config) {
			if c.Concurrency != 1000 {
				t.Errorf("Concurrency = %d", c.Concurrency)
			}
		}},
		{"tenant-timeout", map[string]string{"tenant-timeout": "1h30m"}, func(t *testing.T, c Config) {
			if c.TenantTimeout != 90*time.Minute {
				t.Errorf("TenantTimeout = %v", c.TenantTimeout)
			}
		}},
		{"canary count", map[string]string{"canary": "3"}, func(t *testing.T, c Config) {
			if c.CanaryCount != 3 || len(c.CanaryGlobs) != 0 {
				t.Errorf("CanaryCount = %d, CanaryGlobs = %q; want 3 and none", c.CanaryCount, c.CanaryGlobs)
			}
		}},
		{"canary globs", map[string]string{"canary": "acme-*, beta"}, func(t *testing.T, c Config) {
			if c.CanaryCount != 0 || !reflect.DeepEqual(c.CanaryGlobs, []string{"acme-*", "beta"}) {
				t.Errorf("CanaryCount = %d, CanaryGlobs = %q; want 0 and [acme-* beta]", c.CanaryCount, c.CanaryGlobs)
			}
		}},
		{"shard", map[string]string{"shard": "2/3"}, func(t *testing.T, c Config) {
			if c.Selector.Shard.Index != 2 || c.Selector.Shard.Count != 3 {
				t.Errorf("Shard = %+v", c.Selector.Shard)
			}
		}},
		{"selection lists", map[string]string{"projects": "a-*\nb", "exclude-projects": "a-old,"}, func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c.Selector.Include, []string{"a-*", "b"}) || !reflect.DeepEqual(c.Selector.Exclude, []string{"a-old"}) {
				t.Errorf("Include = %q, Exclude = %q", c.Selector.Include, c.Selector.Exclude)
			}
		}},
		{"neon url trailing slash trimmed and org id", map[string]string{"neon-api-url": "http://localhost:8080/api/v2/", "neon-org-id": "org-morning-bread-81040908"}, func(t *testing.T, c Config) {
			if c.Neon.APIURL != "http://localhost:8080/api/v2" || c.Neon.OrgID != "org-morning-bread-81040908" {
				t.Errorf("APIURL = %q, OrgID = %q", c.Neon.APIURL, c.Neon.OrgID)
			}
		}},
		{"database-urls replaces the neon api key", map[string]string{"neon-api-key": "", "database-urls": "a=postgres://u:pw@h/db"}, func(t *testing.T, c Config) {
			if len(c.DatabaseURLs) != 1 || c.DatabaseURLs[0].Name != "a" || c.Neon.APIKey != "" {
				t.Errorf("DatabaseURLs = %d entries, Neon = %+v", len(c.DatabaseURLs), c.Neon)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load((with(minimal, tt.over)))
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadInvalidInputs(t *testing.T) {
	tests := []struct {
		name  string
		over  map[string]string
		input string // the one input the error must name
	}{
		{"concurrency 0", map[string]string{"concurrency": "0"}, "concurrency"},
		{"concurrency abc", map[string]string{"concurrency": "abc"}, "concurrency"},
		{"concurrency -1", map[string]string{"concurrency": "-1"}, "concurrency"},
		{"concurrency 1001", map[string]string{"concurrency": "1001"}, "concurrency"},
		{"tenant-timeout words", map[string]string{"tenant-timeout": "10 minutes"}, "tenant-timeout"},
		{"tenant-timeout negative", map[string]string{"tenant-timeout": "-1s"}, "tenant-timeout"},
		{"tenant-timeout zero", map[string]string{"tenant-timeout": "0s"}, "tenant-timeout"},
		{"shard 0/3", map[string]string{"shard": "0/3"}, "shard"},
		{"shard 4/3", map[string]string{"shard": "4/3"}, "shard"},
		{"shard 1/0", map[string]string{"shard": "1/0"}, "shard"},
		{"shard x", map[string]string{"shard": "x"}, "shard"},
		{"missing neon-api-key", map[string]string{"neon-api-key": ""}, "neon-api-key"},
		{"neon-api-url not a url", map[string]string{"neon-api-url": "console.neon.tech"}, "neon-api-url"},
		{"neon-api-url ftp", map[string]string{"neon-api-url": "ftp://console.neon.tech/api/v2"}, "neon-api-url"},
		{"neon-api-url no host", map[string]string{"neon-api-url": "https://"}, "neon-api-url"},
		{"bad org id", map[string]string{"neon-org-id": "Org_Bad!"}, "neon-org-id"},
		{"neon-rate-limit too high", map[string]string{"neon-rate-limit": "701"}, "neon-rate-limit"},
		{"canary -1", map[string]string{"canary": "-1"}, "canary"},
		{"canary malformed glob", map[string]string{"canary": "["}, "canary"},
		{"projects malformed glob", map[string]string{"projects": "ok-*, ["}, "projects"},
		{"exclude-projects malformed glob", map[string]string{"exclude-projects": "[a-"}, "exclude-projects"},
		{"max-failures negative", map[string]string{"max-failures": "-2"}, "max-failures"},
		{"database-urls bad", map[string]string{"neon-api-key": "", "database-urls": "mysql://u:pw@h/db"}, "database-urls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load((with(minimal, tt.over)))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var ie *input.Error
			if !errors.As(err, &ie) {
				t.Fatalf("Load error %q holds no *input.Error", err)
			}
			if ie.Input != tt.input {
				t.Errorf("errors.As found input %q, want %q (error: %v)", ie.Input, tt.input, err)
			}
			if got := inputNames(inputErrors(t, err)); !reflect.DeepEqual(got, []string{tt.input}) {
				t.Errorf("inputs named = %q, want exactly [%s] (error: %v)", got, tt.input, err)
			}
			if !strings.Contains(err.Error(), "input "+tt.input+":") {
				t.Errorf("error text %q does not name input %s", err, tt.input)
			}
		})
	}
}

func TestLoadNeonInputsIgnoredWithDatabaseURLs(t *testing.T) {
	// With database-urls, the Neon API is not used: no key is needed and
	// a bad neon-api-url does not matter.
	in := map[string]string{
		"mode":          "migrate",
		"database-urls": "a=postgres://u:pw@h/db",
		"neon-api-url":  "not a url",
	}
	if _, err := load((in)); err != nil {
		t.Fatalf("Load = %v, want no error", err)
	}
}

func TestLoadReportsEveryBadInput(t *testing.T) {
	in := map[string]string{
		"concurrency":    "abc",
		"tenant-timeout": "10 minutes",
		"shard":          "4/3",
		"neon-api-url":   "ftp://x",
		"canary":         "[",
	} // and no neon-api-key
	_, err := load((in))
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := []string{"canary", "concurrency", "neon-api-key", "neon-api-url", "shard", "tenant-timeout"}
	if got := inputNames(inputErrors(t, err)); !reflect.DeepEqual(got, want) {
		t.Errorf("inputs named = %q\nwant %q", got, want)
	}
}

func TestParseDatabaseURLs(t *testing.T) {
	raw := strings.Join([]string{
		"# tenants",
		"",
		"acme = postgres://acme_owner:pw1@ep-acme.neon.tech/acme?sslmode=require",
		"   ",
		"postgresql://u:pw2@db.example.com:6543/beta",
		"  # indented comment",
		"gamma.prod_1=postgres://u:pw3@10.0.0.1/gamma\r",
	}, "\n")
	got, err := ParseDatabaseURLs(raw)
	if err != nil {
		t.Fatalf("ParseDatabaseURLs = %v", err)
	}
	want := []NamedURL{
		{Name: "acme", URL: "postgres://acme_owner:pw1@ep-acme.neon.tech/acme?sslmode=require"},
		{Name: "db.example.com/beta", URL: "postgresql://u:pw2@db.example.com:6543/beta"},
		{Name: "gamma.prod_1", URL: "postgres://u:pw3@10.0.0.1/gamma"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseDatabaseURLsErrors(t *testing.T) {
	const secret = "Sup3rS3cretPassw0rd"
	tests := []struct {
		name string
		raw  string
		want []string // substrings of the error
	}{
		{"empty", "\n# only a comment\n", []string{"no database URLs"}},
		{"duplicate names", "a=postgres://u:" + secret + "@h1/db\n# x\na=postgres://u:" + secret + "@h2/db", []string{"line 3", "line 1", `"a"`}},
		{"duplicate bare urls", "postgres://u:" + secret + "@h/db\npostgres://v:" + secret + "@h:5433/db", []string{"line 2", "line 1", "h/db"}},
		{"mysql url", "# c\n\nx=mysql://u:" + secret + "@h/db", []string{"line 3"}},
		{"bare mysql url", "mysql://u:" + secret + "@h/db", []string{"line 1"}},
		{"no database", "ok=postgres://u:pw@h/db\nx=postgres://u:" + secret + "@h", []string{"line 2"}},
		{"only a slash for database", "postgres://u:" + secret + "@h/", []string{"line 1"}},
		{"no host", "x=postgres:///db?password=" + secret, []string{"line 1"}},
		{"bad name", "bad name!=postgres://u:" + secret + "@h/db", []string{"line 1"}},
		{"not a url", "x=" + secret, []string{"line 1"}},
		{"unparseable url", "x=postgres://u:" + secret + "@h:port/db", []string{"line 1"}},
		{"several bad lines", "mysql://u:" + secret + "@h/db\nok=postgres://u:p@h/db\ny=postgres://u:" + secret + "@h", []string{"line 1", "line 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDatabaseURLs(tt.raw)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error %q contains the password", msg)
			}
			// Through Load too, where it becomes an *input.Error.
			_, err = load((map[string]string{"mode": "migrate", "database-urls": tt.raw}))
			var ie *input.Error
			if !errors.As(err, &ie) || ie.Input != "database-urls" {
				t.Errorf("Load error = %v, want an *input.Error for database-urls", err)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("Load error %q contains the password", err)
			}
		})
	}
}

func TestParseDatabaseURLsRejectsUnencodedSlashInPassword(t *testing.T) {
	_, err := ParseDatabaseURLs("postgres://u:1234/secretpart@h/db\n")
	if err == nil || !strings.Contains(err.Error(), "percent-encode") || strings.Contains(err.Error(), "secretpart") {
		t.Fatalf("err = %v", err)
	}
}
