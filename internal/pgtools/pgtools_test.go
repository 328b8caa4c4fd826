package pgtools

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func envMap(t *testing.T, url string) map[string]string {
	t.Helper()
	env, err := LibpqEnv(url, "app")
	if err != nil {
		t.Fatalf("LibpqEnv: %v", err)
	}
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := m[k]; dup {
			t.Errorf("%s set twice", k)
		}
		m[k] = v
	}
	return m
}

func TestLibpqEnv(t *testing.T) {
	// A password with every character a URL must encode arrives intact,
	// as pgx (the one parser) read it.
	m := envMap(t, "postgres://neondb_owner:p%40ss%2Fw%3Fo%23rd%20x@ep-cool-1.eu-central-1.aws.neon.tech/neondb?sslmode=require&options=endpoint%3Dep-cool-1")
	want := map[string]string{
		"PGHOST": "ep-cool-1.eu-central-1.aws.neon.tech", "PGPORT": "5432", "PGUSER": "neondb_owner",
		"PGPASSWORD": "p@ss/w?o#rd x", "PGDATABASE": "neondb", "PGSSLMODE": "require", "PGAPPNAME": "app",
		"PGOPTIONS": "endpoint=ep-cool-1",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	for url, mode := range map[string]string{
		"postgres://u:p@h/db?sslmode=disable":     "disable",
		"postgres://u:p@h/db?sslmode=allow":       "allow",
		"postgres://u:p@h/db":                     "prefer",
		"postgres://u:p@h/db?sslmode=prefer":      "prefer",
		"postgres://u:p@h/db?sslmode=verify-full": "verify-full",
		"postgres://u:p@h/db?sslmode=verify-ca":   "verify-ca",
	} {
		if got := envMap(t, url)["PGSSLMODE"]; got != mode {
			t.Errorf("%s: PGSSLMODE = %q, want %q", url, got, mode)
		}
	}
	if m := envMap(t, "postgres://u:p@h/db?sslmode=verify-full"); m["PGSSLROOTCERT"] != "system" {
		t.Errorf("verify-full without a root cert: PGSSLROOTCERT = %q, want system (what pgx uses)", m["PGSSLROOTCERT"])
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte(testCA), 0o600)
	if m := envMap(t, "postgres://u:p@h/db?sslmode=verify-ca&sslrootcert="+ca); m["PGSSLROOTCERT"] != ca || m["PGSSLMODE"] != "verify-ca" {
		t.Errorf("sslrootcert: %v", m)
	}
	m = envMap(t, "postgres://u:p@h1:5433,h2:5434/db?sslmode=disable&search_path=app%20x&channel_binding=require")
	if m["PGHOST"] != "h1,h2" || m["PGPORT"] != "5433,5434" || m["PGCHANNELBINDING"] != "require" || m["PGOPTIONS"] != `-c search_path=app\ x` {
		t.Errorf("multi-host, runtime params: %v", m)
	}
	if _, err := LibpqEnv("postgres://u:p@ss@h/db", "app"); err == nil {
		t.Error("an ambiguous password must be refused, as everywhere")
	}
}

// The tools see only an allowlist of the process's variables: never the
// inputs (every tenant's password), keys or tokens, nor inherited PG*.
func TestToolEnvIsAnAllowlist(t *testing.T) {
	t.Setenv("PGHOST", "elsewhere")
	t.Setenv("PGPASSWORD", "inherited")
	t.Setenv("INPUT_DATABASE-URLS", "a=postgres://u:tenant-secret@h/db")
	t.Setenv("INPUT_NEON-API-KEY", "neon-secret")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "oidc-secret")
	env := ToolEnv([]string{"PGHOST=h"})
	joined := strings.Join(env, "\n")
	for _, leak := range []string{"elsewhere", "inherited", "tenant-secret", "neon-secret", "aws-secret", "oidc-secret"} {
		if strings.Contains(joined, leak) {
			t.Errorf("ToolEnv passes %q on: %v", leak, env)
		}
	}
	if !slices.Contains(env, "PGHOST=h") || !strings.Contains(joined, "PATH=") {
		t.Errorf("ToolEnv lost what the tool needs: %v", env)
	}
}

func TestPooler(t *testing.T) {
	if !IsPoolerHost("ep-cool-1-pooler.eu-central-1.aws.neon.tech") || IsPoolerHost("ep-cool-1.eu-central-1.aws.neon.tech") || IsPoolerHost("pooler.example.com") {
		t.Error("IsPoolerHost")
	}
	if p := PoolerProblem("postgres://u:p@ep-x-pooler.neon.tech/db"); !strings.Contains(p, "-pooler") {
		t.Errorf("PoolerProblem = %q", p)
	}
	if p := PoolerProblem("postgres://u:p@ep-x.neon.tech/db"); p != "" {
		t.Errorf("PoolerProblem on a direct host = %q", p)
	}
}

func TestVersions(t *testing.T) {
	for v, want := range map[string]int{"15.18 (Debian 15.18-0+deb12u1)": 15, "17.5": 17, "18beta1": 18, "9.6.24": 9} {
		if got := ServerMajor(v); got != want {
			t.Errorf("ServerMajor(%q) = %d", v, got)
		}
	}
	dump := Tool{Path: "/x/pg_dump", Version: "15.4", Major: 15}
	if err := CheckDumpVersion(dump, "16.2"); err == nil || !strings.Contains(err.Error(), "older than the server") {
		t.Errorf("pg_dump 15 for server 16: %v", err)
	}
	if err := CheckDumpVersion(dump, "14.9"); err != nil {
		t.Errorf("pg_dump 15 for server 14: %v", err)
	}
}

// testCA is a self-signed certificate, only for pgx to load.
const testCA = `-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw
DgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlow
EjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d
7VNhbWvZLWPuj/RtHFjvtJBEwOkhbN/BnnE8rnZR8+sbwnc/KhCk3FhnpHZnQz7B
5aETbbIgmuvewdjvSBSjYzBhMA4GA1UdDwEB/wQEAwICpDATBgNVHSUEDDAKBggr
BgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MCkGA1UdEQQiMCCCDmxvY2FsaG9zdDo1
NDUzgg4xMjcuMC4wLjE6NTQ1MzAKBggqhkjOPQQDAgNIADBFAiEA2zpJEPQyz6/l
Wf86aX6PepsntZv2GYlA5UpabfT2EZICICpJ5h/iI+i341gBmLiAFQOyTDT+/wQc
6MF9+Yw1Yy0t
-----END CERTIFICATE-----
`
