package github

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestValidSecretName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
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
	} {
		err := ValidSecretName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidSecretName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v does not wrap ErrInvalidName", tc.name, err)
		}
		if (ValidVariableName(tc.name) == nil) != tc.ok {
			t.Errorf("ValidVariableName(%q) disagrees", tc.name)
		}
	}
}

func TestValidEnvironmentName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
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
	} {
		err := ValidEnvironmentName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidEnvironmentName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v does not wrap ErrInvalidName", tc.name, err)
		}
	}
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
