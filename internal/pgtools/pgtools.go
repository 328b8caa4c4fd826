// Package pgtools runs PostgreSQL's client programs (pg_dump, pg_restore,
// psql) for the backup and restore modes: the connection handed to them in
// libpq's environment and nothing else of the process's, which program and
// version, each in a process group of its own with the end of its stderr
// kept; and the catalog queries a dump's row counts come from. It knows
// nothing of where backups live or how they are named (that is archive).
package pgtools

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
)

// InputPgDumpPath is the input both backup and restore read, declared once
// here so the two declarations are identical (the input table merges them).
var InputPgDumpPath = &input.Input{Name: "pg-dump-path", Default: "pg_dump", Description: "The pg_dump to run: its major version must be at least every server's (Neon runs 14-18; the action's image ships PostgreSQL 18's). Restore runs pg_restore and psql from the same folder."}

// LibpqEnv is the environment that gives pg_dump, pg_restore or psql the
// connection rawURL names: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
// PGSSLMODE and the rest, taken from what pgconnect.ParseURL (the one
// parser of connection strings) made of it. No URL goes on a command line:
// libpq would be a second parser that could read the string differently,
// and the password would show in ps. appName is application_name.
//
// The certificate file settings (sslrootcert, sslcert, sslkey) are paths
// pgx reads and does not keep: they are taken from the URL's query once
// ParseURL has accepted it. verify-full without sslrootcert means the
// system's roots, as with pgx (PGSSLROOTCERT=system, libpq 16 and later).
func LibpqEnv(rawURL, appName string) ([]string, error) {
	cfg, err := pgconnect.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	c := &cfg.Config
	var hosts, ports []string
	seen := map[string]bool{}
	add := func(h string, p uint16) {
		k := net.JoinHostPort(h, strconv.Itoa(int(p)))
		if !seen[k] {
			seen[k] = true
			hosts = append(hosts, h)
			ports = append(ports, strconv.Itoa(int(p)))
		}
	}
	add(c.Host, c.Port)
	for _, fb := range c.Fallbacks {
		add(fb.Host, fb.Port)
	}
	env := []string{
		"PGHOST=" + strings.Join(hosts, ","),
		"PGPORT=" + strings.Join(ports, ","),
		"PGUSER=" + c.User,
		"PGDATABASE=" + c.Database,
		"PGAPPNAME=" + appName,
		"PGCONNECT_TIMEOUT=" + strconv.Itoa(int(pgconnect.Options{}.Timeout()/time.Second)),
		"PGSSLMODE=" + sslMode(c),
	}
	if c.Password != "" {
		env = append(env, "PGPASSWORD="+c.Password)
	}
	q := url.Values{}
	if u, err := url.Parse(rawURL); err == nil {
		q = u.Query()
	}
	mode := sslMode(c)
	switch root := q.Get("sslrootcert"); {
	case root != "":
		env = append(env, "PGSSLROOTCERT="+root)
	case mode == "verify-full" || mode == "verify-ca":
		env = append(env, "PGSSLROOTCERT=system")
	}
	if v := q.Get("sslcert"); v != "" {
		env = append(env, "PGSSLCERT="+v)
	}
	if v := q.Get("sslkey"); v != "" {
		env = append(env, "PGSSLKEY="+v)
	}
	if c.SSLNegotiation == "direct" {
		env = append(env, "PGSSLNEGOTIATION=direct")
	}
	if c.ChannelBinding == "require" || c.ChannelBinding == "disable" {
		env = append(env, "PGCHANNELBINDING="+c.ChannelBinding)
	}
	if c.RequireAuth != "" {
		env = append(env, "PGREQUIREAUTH="+c.RequireAuth)
	}
	// Run-time parameters: "options" as given, any other (search_path...)
	// as -c name=value.
	var opts []string
	if o := c.RuntimeParams["options"]; o != "" {
		opts = append(opts, o)
	}
	for k, v := range c.RuntimeParams {
		if k == "options" || k == "application_name" {
			continue
		}
		opts = append(opts, "-c "+escapeOption(k)+"="+escapeOption(v))
	}
	if len(opts) > 0 {
		env = append(env, "PGOPTIONS="+strings.Join(opts, " "))
	}
	return env, nil
}

// escapeOption escapes spaces and backslashes the way libpq's options
// parameter wants them.
func escapeOption(s string) string {
	return strings.NewReplacer(`\`, `\\`, " ", `\ `).Replace(s)
}

// sslMode is the libpq sslmode equivalent to the TLS settings pgx derived
// for the first host.
func sslMode(c *pgconn.Config) string {
	plainFallback, tlsFallback := false, false
	for _, fb := range c.Fallbacks {
		if fb.Host != c.Host || fb.Port != c.Port {
			continue
		}
		if fb.TLSConfig == nil {
			plainFallback = true
		} else {
			tlsFallback = true
		}
	}
	t := c.TLSConfig
	switch {
	case t == nil && tlsFallback:
		return "allow"
	case t == nil:
		return "disable"
	case plainFallback:
		return "prefer"
	case t.VerifyPeerCertificate != nil:
		return "verify-ca"
	case t.InsecureSkipVerify:
		return "require"
	}
	return "verify-full"
}

// ToolEnv is the environment a PostgreSQL client tool runs with: only what
// it needs from the process's (an allowlist: the process holds every
// tenant's password in INPUT_DATABASE-URLS, the Neon key, tokens and AWS
// keys, none of which pg_dump, pg_restore, psql or a pg-dump-path wrapper
// may see), the connection in libpq's variables, messages in English.
func ToolEnv(libpq []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "HOME", "TMPDIR", "TZ", "LANG", "USER", "LD_LIBRARY_PATH":
			env = append(env, kv)
		}
	}
	return append(append(env, "LC_MESSAGES=C"), libpq...)
}

// IsPoolerHost reports whether host is a Neon pooled endpoint
// (ep-...-pooler.<region>...): PgBouncer in transaction mode, which breaks
// pg_dump and a restore in one transaction.
func IsPoolerHost(host string) bool {
	first, _, _ := strings.Cut(host, ".")
	return strings.HasSuffix(strings.ToLower(first), "-pooler")
}

// PoolerProblem says why a pooled connection string cannot be used, ""
// when it is not one.
func PoolerProblem(rawURL string) string {
	cfg, err := pgconnect.ParseURL(rawURL)
	if err != nil {
		return ""
	}
	hosts := []string{cfg.Host}
	for _, fb := range cfg.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if IsPoolerHost(h) {
			return fmt.Sprintf("%s is a pooled (-pooler) host: pg_dump and pg_restore need a direct connection; remove -pooler from the host name", h)
		}
	}
	return ""
}

// Tool is a PostgreSQL client program and its version.
type Tool struct {
	Path    string
	Version string // "15.18"
	Major   int
}

var toolVersion = regexp.MustCompile(`\(PostgreSQL\) ([0-9]+)(\.[0-9]+)?`)

// FindTool locates a client program and asks its version. name is a path
// or a command on PATH.
func FindTool(ctx context.Context, name string) (Tool, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return Tool{}, fmt.Errorf("%s: not found or not executable", name)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, "--version")
	cmd.Env = ToolEnv(nil)
	out, err := cmd.Output()
	if err != nil {
		return Tool{}, fmt.Errorf("%s --version: %w", p, err)
	}
	m := toolVersion.FindStringSubmatch(string(out))
	if m == nil {
		answer := strings.TrimSpace(string(out)) // the start is enough to see what answered
		if len(answer) > 80 {
			answer = answer[:80] + "…"
		}
		return Tool{}, fmt.Errorf("%s --version answered %q: not a PostgreSQL client program", p, answer)
	}
	major, _ := strconv.Atoi(m[1])
	return Tool{Path: p, Version: m[1] + m[2], Major: major}, nil
}

// Sibling is the program name in the same folder as t (pg_restore and psql
// beside pg_dump), or name on PATH when t was found there.
func (t Tool) Sibling(name string) string {
	p := filepath.Join(filepath.Dir(t.Path), name)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return p
	}
	return name
}

// ServerMajor reads the major version from a server_version parameter
// ("15.18 (Debian ...)", "17.5", "18beta1").
func ServerMajor(version string) int {
	i := 0
	for i < len(version) && version[i] >= '0' && version[i] <= '9' {
		i++
	}
	n, _ := strconv.Atoi(version[:i])
	return n
}

// CheckDumpVersion fails when pg_dump is older than the server: pg_dump
// refuses (or worse, misreads) a server of a newer major version.
func CheckDumpVersion(dump Tool, serverVersion string) error {
	sm := ServerMajor(serverVersion)
	if sm > dump.Major {
		return fmt.Errorf("pg_dump %s (%s) is older than the server (PostgreSQL %s): pg_dump must be of the server's major version or newer; point pg-dump-path at pg_dump %d or later", dump.Version, dump.Path, serverVersion, sm)
	}
	return nil
}
