// Package syncsecrets is `mode: sync-secrets`: every tenant's connection string
// written into a GitHub Actions secret (of a repository, of one environment
// per tenant, or of an organization), within GitHub's limits, writing only
// what changed.
//
// Prepare lists the fleet, resolves every connection string, reads what
// GitHub holds (secrets, fingerprint variables, environments) and checks
// the whole plan (names, collisions, capacity) before anything is written;
// the runner then works on exactly the tenants listed (mode.SourceOverride).
// Writes go one at a time, paced by internal/github.
package syncsecrets

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/httpurl"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
)

// Mode is `mode: sync-secrets`.
type Mode struct{}

var _ mode.Mode = Mode{}

var _ mode.Job = (*Job)(nil)

var _ mode.SourceOverride = (*Job)(nil)

var _ mode.Finisher = (*Job)(nil)

func (Mode) Name() string { return "sync-secrets" }

func (Mode) Synopsis() string {
	return "Write every tenant's connection string into a GitHub Actions secret (repository, one environment per tenant, or organization), writing only what changed."
}

// Defaults of secret-name, by target.
const (
	defaultSecretName    = "{{NAME}}_DATABASE_URL"
	defaultEnvSecretName = "DATABASE_URL"
	defaultGitHubAPIURL  = "https://api.github.com"
)

// The mode's own inputs, each declared once and read by its value.
var (
	InputGithubAPIURL     = &input.Input{Name: "github-api-url", Env: "GITHUB_API_URL", Description: "GitHub REST API root (GitHub Enterprise Server: https://HOST/api/v3). Default: GITHUB_API_URL, which the runner sets, else https://api.github.com."}
	InputRepository       = &input.Input{Name: "repository", Env: "GITHUB_REPOSITORY", Description: "owner/name of the repository whose secrets or environments are written (organization target: its owner is the organization, and selected visibility selects it). Default: GITHUB_REPOSITORY."}
	InputSecretTarget     = &input.Input{Name: "secret-target", Default: "repository", Description: "Where each tenant's secret goes: repository (at most 100 secrets, counting those already there), environment (one environment per tenant, created if missing, 100 secrets each: the way past 100 tenants) or organization (1,000, but a repository sees only 100 organization secrets)."}
	InputSecretVisibility = &input.Input{Name: "secret-visibility", Default: "selected", Description: "Organization target only: which repositories may use the secrets: selected (only repository), private (every private and internal repository) or all."}
	InputSecretName       = &input.Input{Name: "secret-name", Description: "Secret name template: {{NAME}} is the project name upper-cased with every run of other characters turned into one _, {{slug}} the same lower-cased with -, {{id}} the project id (its - turned into _). Default: {{NAME}}_DATABASE_URL, or DATABASE_URL inside a per-tenant environment."}
	InputEnvironmentName  = &input.Input{Name: "environment-name", Default: "tenant-{{slug}}", Description: "Environment target only: the environment name template (same placeholders; {{id}} keeps its -)."}
	InputPooled           = &input.Input{Name: "pooled", Default: "true", Bool: true, Description: "Write Neon's pooled connection string (the -pooler host applications usually want); false for the direct one."}
	InputPrune            = &input.Input{Name: "prune", Default: "false", Bool: true, Description: "After the writes, delete the secrets pgfleet wrote whose names this run's templates produce but no current tenant has (environments: the secret, never the environment). Refused with projects, exclude-projects or shard, which would make the other tenants look gone."}
	InputFingerprintKey   = &input.Input{Name: "fingerprint-key", Secret: true, Env: "PGFLEET_FINGERPRINT_KEY", Description: "Key of the HMAC fingerprints (kept in a variable named PGFLEET_FP_ and the secret name, beside each secret) that tell which secrets are current (store it as a secret; at least 16 characters). Default: derived from neon-api-key (rotating it rewrites every secret once). Required with database-urls. CLI: also PGFLEET_FINGERPRINT_KEY."}
	InputMaxDuration      = &input.Input{Name: "max-duration", Default: "5h30m", Description: "Time budget from the start of the run (GitHub allows about 500 writes an hour): when it is spent, the tenants not yet written are left for the next run, which continues where this one stopped (exit 1, output remaining)."}
)

func (Mode) Inputs() []*input.Input {
	return []*input.Input{
		input.GitHubToken,
		InputGithubAPIURL,
		InputRepository,
		InputSecretTarget,
		InputSecretVisibility,
		InputSecretName,
		InputEnvironmentName,
		InputPooled,
		InputPrune,
		input.DryRun,
		InputFingerprintKey,
		InputMaxDuration,
	}
}

func (Mode) Outputs() []input.Output {
	return []input.Output{
		{Name: "created", Description: "Secrets created: new tenants, or secrets deleted by hand (dry run: that would be)."},
		{Name: "updated", Description: "Secrets rewritten: the connection string changed, the secret was changed by hand, or no fingerprint was recorded (dry run: that would be)."},
		{Name: "unchanged", Description: "Secrets already current: nothing written."},
		{Name: "deleted", Description: "Secrets deleted by prune (dry run: that would be)."},
		{Name: "remaining", Description: "Tenants whose secret is not yet current (failed, or left when max-duration was spent): run again to continue."},
	}
}

// options are the mode's inputs, read and checked.
type options struct {
	token        string
	apiURL       string
	owner, repo  string
	kind         github.Kind
	visibility   string
	secretName   template
	envName      template
	pooled       bool
	prune        bool
	dryRun       bool
	fpKey        string
	maxDuration  time.Duration
	writeGap     time.Duration // test-only override, 0 = choose
	writeGapTest bool
}

func readOptions(env mode.Env) options {
	in := env.Inputs
	o := options{
		token:       in.String(input.GitHubToken),
		apiURL:      in.String(InputGithubAPIURL),
		pooled:      in.Bool(InputPooled),
		prune:       in.Bool(InputPrune),
		dryRun:      in.Bool(input.DryRun),
		fpKey:       in.Raw(InputFingerprintKey),
		maxDuration: in.Duration(InputMaxDuration),
	}
	env.Secret(o.token)
	env.Secret(o.fpKey)
	if o.token == "" {
		in.Bad(input.GitHubToken, "required: a token that can write Actions secrets and variables (a fine-grained token or GitHub App token; the workflow's own GITHUB_TOKEN cannot)")
	}
	if o.apiURL == "" {
		o.apiURL = defaultGitHubAPIURL
	}
	if _, ok := httpurl.Parse(o.apiURL); !ok {
		in.Bad(InputGithubAPIURL, "want an http(s) URL like https://api.github.com, got %q", o.apiURL)
	}
	repo := in.String(InputRepository)
	owner, name, ok := strings.Cut(repo, "/")
	switch {
	case repo == "":
		in.Bad(InputRepository, "required: owner/name (in Actions it defaults to GITHUB_REPOSITORY)")
	case !ok || owner == "" || name == "" || strings.ContainsAny(name, "/?#%\\ ") || strings.ContainsAny(owner, "?#%\\ "):
		in.Bad(InputRepository, "want owner/name, got %q", repo)
	}
	o.owner, o.repo = owner, name

	switch in.OneOf(InputSecretTarget, "repository", "environment", "organization") {
	case "repository":
		o.kind = github.KindRepository
	case "environment":
		o.kind = github.KindEnvironment
	case "organization":
		o.kind = github.KindOrganization
	}
	o.visibility = in.OneOf(InputSecretVisibility, github.VisibilitySelected, github.VisibilityPrivate, github.VisibilityAll)

	secretName := in.String(InputSecretName)
	if secretName == "" {
		secretName = defaultSecretName
		if o.kind == github.KindEnvironment {
			secretName = defaultEnvSecretName
		}
	}
	var err error
	if o.secretName, err = parseTemplate(secretName); err != nil {
		in.Bad(InputSecretName, "%v", err)
	} else if o.kind != github.KindEnvironment && !o.secretName.perTenant() {
		in.Bad(InputSecretName, "%q names every tenant's secret the same in one %s: include {{NAME}} or {{id}}, like %s", secretName, o.kind, defaultSecretName)
	}
	if o.kind == github.KindEnvironment {
		envName := in.String(InputEnvironmentName)
		if o.envName, err = parseTemplate(envName); err != nil {
			in.Bad(InputEnvironmentName, "%v", err)
		} else if !o.envName.perTenant() {
			in.Bad(InputEnvironmentName, "%q puts every tenant in the same environment: include {{slug}}, {{NAME}} or {{id}}, like tenant-{{slug}}", envName)
		}
	}

	if o.fpKey != "" && len(o.fpKey) < 16 {
		// Shorter keys are weak for fingerprints kept in readable
		// variables, and too short to be masked in the log.
		in.Bad(InputFingerprintKey, "too short: give at least 16 characters (a long random string, stored as a secret)")
	}
	if o.fpKey == "" && len(env.Config.DatabaseURLs) > 0 {
		in.Bad(InputFingerprintKey, "required with database-urls: the fingerprints that tell which secrets are current are keyed by neon-api-key otherwise (give any long random string, stored as a secret, and keep it)")
	}
	if o.prune && (len(env.Config.Selector.Include) > 0 || len(env.Config.Selector.Exclude) > 0 || env.Config.Selector.Shard.Count > 1) {
		in.Bad(InputPrune, "cannot be combined with projects, exclude-projects or shard: the secrets of the tenants left out would look orphaned and be deleted")
	}

	// PGFLEET_GITHUB_WRITE_GAP exists for tests only, which cannot wait
	// GitHub's 750 ms between writes. It is honoured only against an API on
	// this machine (the tests' emulator): a real run always keeps the safe
	// pace, whatever its environment holds.
	if v := env.Getenv("PGFLEET_GITHUB_WRITE_GAP"); v != "" && isLoopbackURL(o.apiURL) {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			o.writeGap, o.writeGapTest = d, true
			if d == 0 {
				o.writeGap = -1 // the client's "none"
			}
		}
	}
	return o
}

// Prepare reads the inputs, lists the fleet, resolves every connection
// string, reads GitHub and checks the whole plan. It writes nothing.
func (Mode) Prepare(ctx context.Context, env mode.Env) (mode.Job, error) {
	started := time.Now()
	o := readOptions(env)
	if err := env.Inputs.Err(); err != nil {
		return nil, err // nothing was read yet
	}
	p, err := newPlanner(env, o)
	if err != nil {
		return nil, err
	}
	pl, err := p.plan(ctx)
	if err != nil {
		return nil, err
	}
	return newJob(env, o, p, pl, started.Add(o.maxDuration)), nil
}

// describeKind says where the secrets go, for the first log line.
func describeTarget(o options) string {
	switch o.kind {
	case github.KindEnvironment:
		return fmt.Sprintf("secret %s in environment %s of %s/%s", o.secretName.raw, o.envName.raw, o.owner, o.repo)
	case github.KindOrganization:
		return fmt.Sprintf("organization %s secret %s (visibility %s)", o.owner, o.secretName.raw, o.visibility)
	}
	return fmt.Sprintf("repository %s/%s secret %s", o.owner, o.repo, o.secretName.raw)
}

// isLoopbackURL reports whether raw names a host on this machine.
func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}
