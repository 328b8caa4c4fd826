package github

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// nameCase is a name and whether GitHub accepts it.
type nameCase struct {
	name string
	ok   bool
}

// checkNames runs valid (called what) on every case: it accepts the good
// names and refuses the others with an error wrapping ErrInvalidName.
func checkNames(t *testing.T, what string, valid func(string) error, cases []nameCase) {
	t.Helper()
	for _, tc := range cases {
		err := valid(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("%s(%q) = %v, want ok=%v", what, tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("%s(%q): %v does not wrap ErrInvalidName", what, tc.name, err)
		}
	}
}

// Secrets and variables follow the same naming rule.
func TestValidSecretAndVariableName(t *testing.T) {
	cases := []nameCase{
		{"ACME_DATABASE_URL", true},
		{"_X", true},
		{"x1", true},
		{"DATABASE_URL", true},
		{"T_123", true},
		{"GITHUBX", true},
		{"MY_GITHUB_TOKEN", true},
		{strings.Repeat("A", MaxSecretNameLength), true},
		{"", false},
		{"1ACME", false},
		{"9", false},
		{"GITHUB_TOKEN", false},
		{"github_x", false},
		{"GitHub_X", false},
		{"ACME-DB", false},
		{"ACME DB", false},
		{"ACME.DB", false},
		{"ÄCME", false},
		{"A/B", false},
		{strings.Repeat("A", MaxSecretNameLength+1), false},
	}
	checkNames(t, "ValidSecretName", ValidSecretName, cases)
	checkNames(t, "ValidVariableName", ValidVariableName, cases)
}

func TestValidEnvironmentName(t *testing.T) {
	checkNames(t, "ValidEnvironmentName", ValidEnvironmentName, []nameCase{
		{"tenant-acme", true},
		{"Tenant_ACME.eu-1", true},
		{"1", true},
		{"...", true},
		{strings.Repeat("e", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{"tenant acme", false},
		{" tenant", false},
		{"tenant/acme", false},
		{"tenant%2F", false},
		{"tenant?x", false},
		{"ténant", false},
		{strings.Repeat("e", 256), false},
	})
}

func TestMaxSecretValueSize(t *testing.T) {
	enc := func(n int) int { return base64.StdEncoding.EncodedLen(n + sealOverhead) }
	if enc(MaxSecretValueSize) > MaxSecretSize || enc(MaxSecretValueSize+1) <= MaxSecretSize {
		t.Errorf("MaxSecretValueSize %d: sealed %d, one more %d, limit %d", MaxSecretValueSize, enc(MaxSecretValueSize), enc(MaxSecretValueSize+1), MaxSecretSize)
	}
}

func TestTargetPaths(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{RepoTarget("o", "r"), "repos/o/r/actions/secrets/N"},
		{EnvTarget("o", "r", "tenant-a.b"), "repos/o/r/environments/tenant-a.b/secrets/N"},
		{OrgTarget("acme", VisibilityAll), "orgs/acme/actions/secrets/N"},
	} {
		if got := tc.t.secretPath("N"); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.t, got, tc.want)
		}
	}
	if got := EnvTarget("o", "r", "x").variablePath("V"); got != "repos/o/r/environments/x/variables/V" {
		t.Errorf("variable path %s", got)
	}
}
