package github

import (
	"errors"
	"fmt"
	"strings"
)

// GitHub's documented limits for Actions secrets and variables.
const (
	MaxRepositorySecrets   = 100      // secrets in one repository
	MaxEnvironmentSecrets  = 100      // secrets in one environment
	MaxOrganizationSecrets = 1000     // secrets in one organization
	MaxVisibleOrgSecrets   = 100      // organization secrets a repository sees: only the first 100 it has access to
	MaxSecretSize          = 48 << 10 // 48 KB: the encrypted, base64-encoded value as sent to GitHub
	// MaxSecretValueSize is the longest plaintext that fits in MaxSecretSize
	// once sealed (a 32-byte ephemeral key and a 16-byte tag are added) and
	// base64-encoded: 4·⌈(n+48)/3⌉ ≤ 49,152.
	MaxSecretValueSize = MaxSecretSize/4*3 - sealOverhead

	MaxRepositoryVariables   = 500      // variables in one repository
	MaxEnvironmentVariables  = 100      // variables in one environment
	MaxOrganizationVariables = 1000     // variables in one organization
	MaxVariableSize          = 48 << 10 // 48 KB per variable value

	MaxEnvironmentNameLength = 255 // GitHub: "may not exceed 255 characters"
	// MaxSecretNameLength is pgfleet's own bound: GitHub documents none, and
	// a name this long is a template gone wrong.
	MaxSecretNameLength = 255
)

// sealOverhead is what a libsodium sealed box adds to a message: the
// ephemeral public key (32 bytes) and the Poly1305 tag (16 bytes).
const sealOverhead = 32 + 16

// ErrInvalidName is wrapped by the errors of ValidSecretName,
// ValidVariableName and ValidEnvironmentName.
var ErrInvalidName = errors.New("invalid name")

// ErrTooLarge is wrapped by the error of a write whose value exceeds
// GitHub's size limit; the error never contains the value.
var ErrTooLarge = errors.New("value too large")

// ValidSecretName checks name against GitHub's rules for secret names:
// only ASCII letters, digits and underscores, not starting with a digit,
// not starting with GITHUB_ (in any case). GitHub stores names upper-cased,
// so two names that differ only in case are the same secret.
func ValidSecretName(name string) error {
	return validIdentifier("secret", name)
}

// ValidVariableName checks name against GitHub's rules for configuration
// variable names, which are the same as for secrets.
func ValidVariableName(name string) error {
	return validIdentifier("variable", name)
}

func validIdentifier(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: %s name is empty", ErrInvalidName, what)
	case len(name) > MaxSecretNameLength:
		return fmt.Errorf("%w: %s name %.40q… is %d characters, more than %d", ErrInvalidName, what, name, len(name), MaxSecretNameLength)
	case name[0] >= '0' && name[0] <= '9':
		return fmt.Errorf("%w: %s name %q starts with a digit", ErrInvalidName, what, name)
	case strings.HasPrefix(strings.ToUpper(name), "GITHUB_"):
		return fmt.Errorf("%w: %s name %q starts with GITHUB_, which GitHub reserves", ErrInvalidName, what, name)
	}
	for _, c := range name {
		if !isLetter(c) && !isDigit(c) && c != '_' {
			return fmt.Errorf("%w: %s name %q contains %q: only letters, digits and _ are allowed", ErrInvalidName, what, name, c)
		}
	}
	return nil
}

// ValidEnvironmentName checks an environment name. GitHub documents only
// that a name is at most 255 characters and unique regardless of case; this
// is stricter so that a name is always safe in a URL path, a log line and a
// workflow file: ASCII letters, digits, '-', '_' and '.', and not "." or
// ".." (which a URL would resolve away).
func ValidEnvironmentName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: environment name is empty", ErrInvalidName)
	case len(name) > MaxEnvironmentNameLength:
		return fmt.Errorf("%w: environment name %.40q… is %d characters, more than %d", ErrInvalidName, name, len(name), MaxEnvironmentNameLength)
	case name == "." || name == "..":
		return fmt.Errorf("%w: environment name %q is not a usable path segment", ErrInvalidName, name)
	}
	for _, c := range name {
		if !isLetter(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' {
			return fmt.Errorf("%w: environment name %q contains %q: pgfleet allows letters, digits, '-', '_' and '.'", ErrInvalidName, name, c)
		}
	}
	return nil
}

func isLetter(c rune) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c rune) bool  { return c >= '0' && c <= '9' }
