package tenant

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseShard(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Shard
	}{
		{"", Shard{1, 1}},
		{"   ", Shard{1, 1}},
		{"1/1", Shard{1, 1}},
		{"1/3", Shard{1, 3}},
		{"3/3", Shard{3, 3}},
		{" 2 / 7 ", Shard{2, 7}},
	} {
		if got, err := ParseShard(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseShard(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	bad := []string{"0/3", "4/3", "1/0", "-1/3", "1/-3", "x", "3", "1/", "/3", "a/b", "1/3/5", "1.5/3"}
	for _, in := range bad {
		_, err := ParseShard(in)
		if err == nil {
			t.Errorf("ParseShard(%q) accepted it", in)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", strings.TrimSpace(in))) {
			t.Errorf("ParseShard(%q) error %q does not quote the input", in, err)
		}
	}
}

func TestShardPartitionsFleet(t *testing.T) {
	const total = 3000
	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("proj-%d", i)
	}
	for _, n := range []int{2, 3, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			counts := make([]int, n)
			for _, id := range ids {
				in := 0
				for i := 1; i <= n; i++ {
					if (Shard{Index: i, Count: n}).Contains(id) {
						in++
						counts[i-1]++
					}
				}
				if in != 1 {
					t.Fatalf("id %s is in %d of %d shards, want exactly 1", id, in, n)
				}
			}
			fair := total / n
			for i, c := range counts {
				if c == 0 || c > 2*fair {
					t.Errorf("shard %d/%d holds %d ids; fair share is %d (counts %v)", i+1, n, c, fair, counts)
				}
			}
		})
	}
}

func TestShardStableAndUnsharded(t *testing.T) {
	s := Shard{Index: 2, Count: 5}
	for i := range 100 {
		id := fmt.Sprintf("proj-%d", i)
		again := Shard{Index: 2, Count: 5} // a fresh value: no state may decide
		if s.Contains(id) != again.Contains(id) {
			t.Fatalf("Contains(%q) is not stable", id)
		}
		for _, whole := range []Shard{{1, 1}, {}} {
			if !whole.Contains(id) {
				t.Errorf("%+v.Contains(%q) = false, want true", whole, id)
			}
		}
	}
}

func TestSelector(t *testing.T) {
	tests := []struct {
		name     string
		sel      Selector
		id, tn   string
		selected bool
	}{
		{"empty selects all", Selector{}, "p-1", "acme", true},
		{"include glob on id", Selector{Include: []string{"p-*"}}, "p-1", "acme", true},
		{"include glob on name", Selector{Include: []string{"ac*"}}, "p-1", "acme", true},
		{"include matches neither", Selector{Include: []string{"beta*"}}, "p-1", "acme", false},
		{"one of several includes", Selector{Include: []string{"beta*", "acme"}}, "p-1", "acme", true},
		{"include with empty name", Selector{Include: []string{"acme"}}, "p-1", "", false},
		{"exclude on id", Selector{Exclude: []string{"p-1"}}, "p-1", "acme", false},
		{"exclude on name", Selector{Exclude: []string{"a?me"}}, "p-1", "acme", false},
		{"exclude wins over include", Selector{Include: []string{"*"}, Exclude: []string{"acme"}}, "p-1", "acme", false},
		{"exclude not matching", Selector{Include: []string{"*"}, Exclude: []string{"beta"}}, "p-1", "acme", true},
		{"glob is whole-string", Selector{Include: []string{"acm"}}, "p-1", "acme", false},
		{"star does not cross slash", Selector{Include: []string{"team*"}}, "p-1", "team/acme", false},
		{"character class", Selector{Include: []string{"p-[0-4]"}}, "p-3", "", true},
		{"malformed glob never matches", Selector{Include: []string{"["}}, "[", "[", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.Selects(tt.id, tt.tn); got != tt.selected {
				t.Errorf("Selects(%q, %q) = %v, want %v", tt.id, tt.tn, got, tt.selected)
			}
		})
	}
}

func TestSelectorShard(t *testing.T) {
	// The shard applies on top of the globs, on the id only.
	n := 3
	for i := range 300 {
		id := fmt.Sprintf("proj-%d", i)
		hits := 0
		for k := 1; k <= n; k++ {
			sel := Selector{Include: []string{"proj-*"}, Shard: Shard{k, n}}
			if sel.Selects(id, "name-that-is-the-same") {
				hits++
			}
			excl := Selector{Exclude: []string{id}, Shard: Shard{k, n}}
			if excl.Selects(id, "") {
				t.Fatalf("excluded %s selected by shard %d/%d", id, k, n)
			}
		}
		if hits != 1 {
			t.Fatalf("%s selected by %d shards, want 1", id, hits)
		}
	}
}

func TestValidateGlobs(t *testing.T) {
	tests := []struct {
		globs []string
		bad   string // "" = valid
	}{
		{nil, ""},
		{[]string{"acme-*", "b?ta", "p-[0-9]", `x\*`}, ""},
		{[]string{"ok", "["}, "["},
		{[]string{"[a-", "ok"}, "[a-"},
		{[]string{`trailing\`}, `trailing\`},
	}
	for _, tt := range tests {
		err := ValidateGlobs(tt.globs)
		if tt.bad == "" {
			if err != nil {
				t.Errorf("ValidateGlobs(%q) = %v", tt.globs, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.bad)) {
			t.Errorf("ValidateGlobs(%q) = %v, want an error naming %q", tt.globs, err, tt.bad)
		}
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  \n , \r\n", nil},
		{"a", []string{"a"}},
		{"a,b", []string{"a", "b"}},
		{" a , b ,, c ", []string{"a", "b", "c"}},
		{"a\nb\n\nc\n", []string{"a", "b", "c"}},
		{"a\r\nb\r\n", []string{"a", "b"}},
		{"acme-*, beta\r\n  gamma,delta  \n\n", []string{"acme-*", "beta", "gamma", "delta"}},
		{"with space inside", []string{"with space inside"}},
		{"\ttabbed\t", []string{"tabbed"}},
	}
	for _, tt := range tests {
		if got := SplitList(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTenantString(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	url := "postgres://owner:" + pw + "@ep-cool-1.neon.tech:5432/appdb?sslmode=require"
	tests := []struct {
		name string
		t    Tenant
		want string
	}{
		{"name, id and url", Tenant{ID: "p-1", Name: "Acme", URL: url}, "Acme (p-1, ep-cool-1.neon.tech/appdb)"},
		{"id and url", Tenant{ID: "p-1", URL: url}, "p-1 (ep-cool-1.neon.tech/appdb)"},
		{"name equal to id", Tenant{ID: "acme", Name: "acme", URL: url}, "acme (ep-cool-1.neon.tech/appdb)"},
		{"name and id, no url", Tenant{ID: "p-1", Name: "Acme"}, "Acme (p-1)"},
		{"id only", Tenant{ID: "p-1"}, "p-1"},
		{"unparseable url", Tenant{ID: "p-1", URL: "postgres://u:" + pw + "@host:notaport/db"}, "p-1 (host/db)"}, // read after the last @: the host and database still show, never the password
		{"encoded password", Tenant{ID: "p-1", URL: "postgres://u:" + url_escape(pw+"@/:?#") + "@h/db"}, "p-1 (h/db)"},
		{"password in the query", Tenant{ID: "p-1", URL: "postgres://u@h/db?password=" + pw}, "p-1 (h/db)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.t.String()
			if got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if strings.Contains(got, pw) || strings.Contains(got, "owner:") {
				t.Errorf("String() = %q leaks the credential", got)
			}
			if s := fmt.Sprint(tt.t); strings.Contains(s, pw) {
				t.Errorf("fmt.Sprint = %q leaks the password", s)
			}
		})
	}
}

func url_escape(s string) string { return url.PathEscape(s) }

func TestHostDB(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:pw@ep-cool-1.neon.tech/neondb?sslmode=require", "ep-cool-1.neon.tech/neondb"},
		{"postgresql://u:pw@10.0.0.1:6543/app", "10.0.0.1/app"},
		{"postgres://u:pw@[::1]:5432/app", "::1/app"},
		{"postgres://h", "h/"},
		{"postgres://h//db", "h/db"},
		{"", ""},
		{"not a url", ""},
		{"postgres://u:pw@host:bad/db", "host/db"},
		{`postgres://u:a"b@host/db`, "host/db"}, // a password Go's URL parser refuses
		{"no scheme", ""},
		{"host=h dbname=db password=pw", ""},
	}
	for _, tt := range tests {
		if got := HostDB(tt.in); got != tt.want {
			t.Errorf("HostDB(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:pw@h/db", "pw"},
		{"postgres://u:p%40ss%2Fw%3Ard@h/db", "p@ss/w:rd"},
		{"postgres://u@h/db", ""},
		{"postgres://h/db", ""},
		{"postgres://u:@h/db", ""},
		{"postgres://u@h/db?sslmode=require&password=qpw", "qpw"},
		{"postgres://u:upw@h/db?password=qpw", "qpw"}, // the query one is what connects
		{"::not a url", ""},
	}
	for _, tt := range tests {
		if got := Password(tt.in); got != tt.want {
			t.Errorf("Password(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
