// Package config turns action inputs or CLI flags into a validated Config.
// Every check and default lives here, and nothing here does I/O beyond
// reading the environment: a bad input is reported before any tenant is
// touched, naming the input and what would be right.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Modes this binary knows.
var Modes = []string{"migrate"}

// Config is a validated run configuration.
type Config struct {
	Mode string

	Neon         Neon
	DatabaseURLs []NamedURL // when set, the Neon API is not used

	Selector tenant.Selector

	Concurrency   int
	TenantTimeout time.Duration
	MaxFailures   int // 0 = unlimited
	CanaryCount   int
	CanaryGlobs   []string

	Migrate Migrate

	ReportFile string // where the JSON report goes; "" = the default path chosen by the caller
}

// Neon is how tenants are found through the Neon API.
type Neon struct {
	APIKey            string // credential
	APIURL            string
	OrgID             string
	Database          string
	Role              string
	Branch            string // name or id; "" = each project's default branch
	RequestsPerMinute int
}

// NamedURL is one database-urls entry.
type NamedURL struct {
	Name string
	URL  string // credential: never format it
}

// Migrate holds the migrate mode's inputs.
type Migrate struct {
	Dir         string
	Table       string
	DryRun      bool
	LockTimeout time.Duration
}

// InputError says which input is wrong and what would be right.
type InputError struct {
	Input   string
	Problem string
}

func (e *InputError) Error() string { return fmt.Sprintf("input %s: %s", e.Input, e.Problem) }

// Lookup returns an input's raw value ("" when unset).
type Lookup func(name string) string

// Defaults, documented in action.yml and the README.
const (
	DefaultNeonAPIURL     = "https://console.neon.tech/api/v2"
	DefaultDatabase       = "neondb"
	DefaultRole           = "neondb_owner"
	DefaultConcurrency    = 10
	MaxConcurrency        = 1000
	DefaultTenantTimeout  = 10 * time.Minute
	DefaultMigrationsDir  = "db/migrations"
	DefaultMigrationTable = "schema_migrations"
	DefaultLockTimeout    = time.Minute
	DefaultNeonRPM        = 600
)

// Load reads and validates every input. It returns all problems at once,
// joined, each an *InputError.
func Load(get Lookup) (Config, error) {
	var errs []error
	bad := func(input, format string, a ...any) {
		errs = append(errs, &InputError{Input: input, Problem: fmt.Sprintf(format, a...)})
	}
	val := func(name, def string) string {
		if v := strings.TrimSpace(get(name)); v != "" {
			return v
		}
		return def
	}

	var c Config
	c.Mode = strings.ToLower(val("mode", ""))
	switch {
	case c.Mode == "":
		bad("mode", "required: one of %s", strings.Join(Modes, ", "))
	case !contains(Modes, c.Mode):
		bad("mode", "unknown mode %q: want one of %s", c.Mode, strings.Join(Modes, ", "))
	}

	// Tenant source.
	if raw := get("database-urls"); strings.TrimSpace(raw) != "" {
		urls, err := ParseDatabaseURLs(raw)
		if err != nil {
			bad("database-urls", "%v", err)
		}
		c.DatabaseURLs = urls
	} else {
		c.Neon = Neon{
			APIKey:   val("neon-api-key", ""),
			APIURL:   strings.TrimRight(val("neon-api-url", DefaultNeonAPIURL), "/"),
			OrgID:    val("neon-org-id", ""),
			Database: val("database", DefaultDatabase),
			Role:     val("role", DefaultRole),
			Branch:   val("branch", ""),
		}
		if c.Neon.APIKey == "" {
			bad("neon-api-key", "required: a Neon API key (or list databases in database-urls instead)")
		}
		if u, err := url.Parse(c.Neon.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("neon-api-url", "want an http(s) URL like %s, got %q", DefaultNeonAPIURL, c.Neon.APIURL)
		}
		if c.Neon.OrgID != "" && !neonIDPattern.MatchString(c.Neon.OrgID) {
			bad("neon-org-id", "want an organization id like org-morning-bread-81040908, got %q", c.Neon.OrgID)
		}
		c.Neon.RequestsPerMinute = intInput(get, "neon-rate-limit", DefaultNeonRPM, 1, 700, "requests per minute to the Neon API (Neon allows 700)", bad)
	}

	// Selection.
	c.Selector.Include = tenant.SplitList(get("projects"))
	c.Selector.Exclude = tenant.SplitList(get("exclude-projects"))
	if err := tenant.ValidateGlobs(c.Selector.Include); err != nil {
		bad("projects", "%v", err)
	}
	if err := tenant.ValidateGlobs(c.Selector.Exclude); err != nil {
		bad("exclude-projects", "%v", err)
	}
	shard, err := tenant.ParseShard(get("shard"))
	if err != nil {
		bad("shard", "%v", err)
	}
	c.Selector.Shard = shard

	// Execution.
	c.Concurrency = intInput(get, "concurrency", DefaultConcurrency, 1, MaxConcurrency, "tenants worked on at once", bad)
	c.TenantTimeout = durationInput(get, "tenant-timeout", DefaultTenantTimeout, bad)
	c.MaxFailures = intInput(get, "max-failures", 0, 0, 1<<30, "failures before the run stops starting tenants (0 = unlimited)", bad)
	if raw := val("canary", ""); raw != "" {
		if n, err := strconv.Atoi(raw); err == nil {
			if n < 0 {
				bad("canary", "want a number of tenants (>= 0) or globs of project names/ids, got %q", raw)
			}
			c.CanaryCount = n
		} else {
			c.CanaryGlobs = tenant.SplitList(raw)
			if err := tenant.ValidateGlobs(c.CanaryGlobs); err != nil {
				bad("canary", "%v", err)
			}
		}
	}

	// Migrate.
	c.Migrate.Dir = val("migrations-dir", DefaultMigrationsDir)
	c.Migrate.Table = val("migrations-table", DefaultMigrationTable)
	if !tableNamePattern.MatchString(c.Migrate.Table) {
		bad("migrations-table", "want a table name like schema_migrations or myschema.schema_migrations, got %q", c.Migrate.Table)
	}
	c.Migrate.DryRun = boolInput(get, "dry-run", false, bad)
	c.Migrate.LockTimeout = durationInput(get, "lock-timeout", DefaultLockTimeout, bad)

	c.ReportFile = val("report-file", "")

	return c, errors.Join(errs...)
}

var (
	neonIDPattern    = regexp.MustCompile(`^[a-z0-9-]{1,60}$`)
	tableNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	tenantNameChars  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
)

func intInput(get Lookup, name string, def, lo, hi int, what string, bad func(string, string, ...any)) int {
	raw := strings.TrimSpace(get(name))
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		bad(name, "want a whole number from %d to %d (%s), got %q", lo, hi, what, raw)
		return def
	}
	return n
}

func durationInput(get Lookup, name string, def time.Duration, bad func(string, string, ...any)) time.Duration {
	raw := strings.TrimSpace(get(name))
	if raw == "" {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		bad(name, "want a positive Go duration like 30s, 10m or 1h30m, got %q", raw)
		return def
	}
	return d
}

func boolInput(get Lookup, name string, def bool, bad func(string, string, ...any)) bool {
	raw := strings.ToLower(strings.TrimSpace(get(name)))
	switch raw {
	case "":
		return def
	case "true", "yes", "1", "on":
		return true
	case "false", "no", "0", "off":
		return false
	}
	bad(name, "want true or false, got %q", raw)
	return def
}

// ParseDatabaseURLs reads one tenant per line: "name=postgres://..." or a
// bare URL, named after its host and database. Blank lines and lines starting
// with # are ignored. Errors name the line but never echo its text: it holds
// a password.
func ParseDatabaseURLs(raw string) ([]NamedURL, error) {
	var out []NamedURL
	var errs []error
	seen := map[string]int{}
	for n, line := range strings.Split(raw, "\n") {
		lineNo := n + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rawURL := "", line
		if i := strings.Index(line, "="); i >= 0 && !strings.Contains(line[:i], "://") {
			name, rawURL = strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
			if !tenantNameChars.MatchString(name) {
				errs = append(errs, fmt.Errorf("line %d: tenant name must be letters, digits, '.', '_' or '-' (at most 100), before '='", lineNo))
				continue
			}
		}
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" || strings.Trim(u.Path, "/") == "" {
			errs = append(errs, fmt.Errorf("line %d: want name=postgres://user:password@host/database (or a bare postgres:// URL) with a host and a database", lineNo))
			continue
		}
		if strings.Contains(u.Path, "@") || strings.Contains(u.Host, "@") {
			// postgres://u:12/34@h/db parses as host "u:12", path "/34@h/db":
			// part of the password would become the tenant's name.
			errs = append(errs, fmt.Errorf("line %d: the password seems to contain an unencoded '/', '@' or '#'; percent-encode it (%%2F, %%40, %%23)", lineNo))
			continue
		}
		if name == "" {
			name = u.Hostname() + "/" + strings.Trim(u.Path, "/")
		}
		if prev, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("line %d: tenant %q is already on line %d", lineNo, name, prev))
			continue
		}
		seen[name] = lineNo
		out = append(out, NamedURL{Name: name, URL: rawURL})
	}
	if len(errs) == 0 && len(out) == 0 {
		errs = append(errs, errors.New("no database URLs found"))
	}
	return out, errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
