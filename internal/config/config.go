// Package config reads the inputs every mode shares (tenant source,
// selection, execution, report) into a validated Config. Defaults come from
// the input table; a bad input is reported before any tenant is touched,
// naming the input and what would be right. The only I/O is reading
// database-urls-file.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/httpurl"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Config is the validated shared configuration: where tenants come from,
// which are selected, and how the run goes. Each mode reads its own inputs.
type Config struct {
	Neon         Neon
	DatabaseURLs []NamedURL // when set, the Neon API is not used

	Selector tenant.Selector

	Concurrency   int
	TenantTimeout time.Duration
	MaxFailures   int // 0 = unlimited
	CanaryCount   int
	CanaryGlobs   []string

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

// MaxConcurrency is the most tenants worked on at once.
const MaxConcurrency = 1000

// Files opens database-urls-file: relative to the workspace, "-" for
// standard input.
type Files struct {
	Workspace string
	Stdin     io.Reader
}

func (f Files) read(name string) ([]byte, error) {
	if name == "-" {
		if f.Stdin == nil {
			return nil, errors.New("no standard input")
		}
		return io.ReadAll(f.Stdin)
	}
	if !filepath.IsAbs(name) && f.Workspace != "" {
		name = filepath.Join(f.Workspace, name)
	}
	return os.ReadFile(name)
}

// Load reads and validates the shared inputs. Problems are recorded in v,
// each naming its input.
func Load(v *input.Values, files Files) Config {
	var c Config

	// Tenant source.
	urls, fromFile := v.Raw(input.DatabaseURLs), v.String(input.DatabaseURLsFile)
	switch {
	case strings.TrimSpace(urls) != "" && fromFile != "":
		v.Bad(input.DatabaseURLsFile, "give database-urls or database-urls-file, not both")
	case fromFile != "":
		b, err := files.read(fromFile)
		if err != nil {
			v.Bad(input.DatabaseURLsFile, "cannot read %q: %v", fromFile, errors.Unwrap(err))
			break
		}
		urls = string(b)
		if strings.TrimSpace(urls) == "" {
			v.Bad(input.DatabaseURLsFile, "%q is empty: want one tenant per line, name=postgres://...", fromFile)
			break
		}
		c.DatabaseURLs = databaseURLs(v, input.DatabaseURLsFile, urls)
	case strings.TrimSpace(urls) != "":
		c.DatabaseURLs = databaseURLs(v, input.DatabaseURLs, urls)
	}
	if strings.TrimSpace(urls) == "" {
		c.Neon = Neon{
			APIKey:   v.String(input.NeonAPIKey),
			APIURL:   strings.TrimRight(v.String(input.NeonAPIURL), "/"),
			OrgID:    v.String(input.NeonOrgID),
			Database: v.String(input.Database),
			Role:     v.String(input.Role),
			Branch:   v.String(input.Branch),
		}
		if c.Neon.APIKey == "" {
			v.Bad(input.NeonAPIKey, "required: a Neon API key (or list databases in database-urls or database-urls-file instead)")
		}
		if _, ok := httpurl.Parse(c.Neon.APIURL); !ok {
			v.Bad(input.NeonAPIURL, "want an http(s) URL like https://console.neon.tech/api/v2, got %q", c.Neon.APIURL)
		}
		if c.Neon.OrgID != "" && !neonIDPattern.MatchString(c.Neon.OrgID) {
			v.Bad(input.NeonOrgID, "want an organization id like org-morning-bread-81040908, got %q", c.Neon.OrgID)
		}
		c.Neon.RequestsPerMinute = v.Int(input.NeonRateLimit, 1, 700, "requests per minute to the Neon API (Neon allows 700)")
	}

	// Selection.
	c.Selector.Include = globs(v, input.Projects)
	c.Selector.Exclude = globs(v, input.ExcludeProjects)
	shard, err := tenant.ParseShard(v.String(input.Shard))
	if err != nil {
		v.Bad(input.Shard, "%v", err)
	}
	c.Selector.Shard = shard

	// Execution.
	c.Concurrency = v.Int(input.Concurrency, 1, MaxConcurrency, "tenants worked on at once")
	c.TenantTimeout = v.Duration(input.TenantTimeout)
	c.MaxFailures = v.Int(input.MaxFailures, 0, 1<<30, "failures before the run stops starting tenants (0 = unlimited)")
	if raw := v.String(input.Canary); raw != "" {
		if n, err := strconv.Atoi(raw); err == nil {
			if n < 0 {
				v.Bad(input.Canary, "want a number of tenants (>= 0) or globs of project names/ids, got %q", raw)
			}
			c.CanaryCount = n
		} else {
			c.CanaryGlobs = globs(v, input.Canary)
		}
	}
	c.ReportFile = v.String(input.ReportFile)
	return c
}

func globs(v *input.Values, in *input.Input) []string {
	list := tenant.SplitList(v.String(in))
	if err := tenant.ValidateGlobs(list); err != nil {
		v.Bad(in, "%v", err)
	}
	return list
}

func databaseURLs(v *input.Values, in *input.Input, raw string) []NamedURL {
	urls, err := ParseDatabaseURLs(raw)
	if err != nil {
		for _, e := range input.Split(err) {
			v.Bad(in, "%v", e)
		}
	}
	return urls
}

var (
	neonIDPattern   = regexp.MustCompile(`^[a-z0-9-]{1,60}$`)
	tenantNameChars = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
)

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
		if !strings.HasPrefix(rawURL, "postgres://") && !strings.HasPrefix(rawURL, "postgresql://") {
			errs = append(errs, fmt.Errorf("line %d: want name=postgres://<user>:<password>@<host>/<database> (or a bare postgres:// URL)", lineNo))
			continue
		}
		// The parser that connects is the one that checks.
		cfg, err := pgconnect.ParseURL(rawURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", lineNo, err))
			continue
		}
		if cfg.Host == "" || strings.HasPrefix(cfg.Host, "/") || cfg.Database == "" {
			errs = append(errs, fmt.Errorf("line %d: want a host and a database: name=postgres://<user>:<password>@<host>/<database>", lineNo))
			continue
		}
		if name == "" {
			name = cfg.Host + "/" + cfg.Database
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
