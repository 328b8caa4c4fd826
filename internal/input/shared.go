package input

// The shared inputs, each declared once: code reads an input by its value
// (values.String(input.Concurrency)), so a misspelt input does not compile.
var (
	Mode = &Input{Name: "mode", Required: true, Description: "What to do:"}

	// Tenant source: the Neon API...
	NeonAPIKey    = &Input{Name: "neon-api-key", Secret: true, Env: "NEON_API_KEY", Description: "Neon API key (store it as a secret). Required unless database-urls or database-urls-file is set. CLI: also NEON_API_KEY."}
	NeonAPIURL    = &Input{Name: "neon-api-url", Default: "https://console.neon.tech/api/v2", Description: "Neon API base URL."}
	NeonOrgID     = &Input{Name: "neon-org-id", Description: `Neon organization id, for API keys that need one (Neon answers "org_id is required").`}
	NeonRateLimit = &Input{Name: "neon-rate-limit", Default: "600", Description: "Neon API requests per minute pgfleet allows itself (Neon allows 700 per account and 40/s per route)."}
	Database      = &Input{Name: "database", Default: "neondb", Description: "Database name in each project."}
	Role          = &Input{Name: "role", Default: "neondb_owner", Description: "Role to connect as in each project."}
	Branch        = &Input{Name: "branch", Description: "Branch name or id in each project (default: each project's default branch)."}
	// ...or an explicit list.
	DatabaseURLs     = &Input{Name: "database-urls", Secret: true, Description: "One tenant per line, name=postgres://user:password@host/db (a bare URL is named host/db; # starts a comment). Percent-encode any of @ : / ? # % [ ] or spaces in the password. When set, the Neon API is not used."}
	DatabaseURLsFile = &Input{Name: "database-urls-file", Description: "A file in database-urls' format (relative to the workspace; - for standard input on the CLI), for fleets too big for one variable (Linux caps one at 128 KiB, about 1,000 lines)."}

	// Selection.
	Projects        = &Input{Name: "projects", Description: "Globs on project name or id (newline- or comma-separated) to include; default all."}
	ExcludeProjects = &Input{Name: "exclude-projects", Description: "Globs on project name or id to leave out."}
	Shard           = &Input{Name: "shard", Description: "i/n: this job takes a stable 1/n of the fleet, by project id, so a matrix of n jobs covers it exactly once."}

	// Execution.
	Concurrency   = &Input{Name: "concurrency", Default: "10", Description: "Tenants worked on at once (1-1000)."}
	TenantTimeout = &Input{Name: "tenant-timeout", Default: "10m", Description: "Time limit per tenant (Go duration); the work is really stopped when it passes."}
	MaxFailures   = &Input{Name: "max-failures", Default: "0", Description: "Stop starting tenants once this many have failed (0 = unlimited)."}
	Canary        = &Input{Name: "canary", Description: "A number N (the first N tenants) or globs of project names/ids: these run first, and all must succeed before any other tenant is touched. A canary that selects no tenant fails the run."}

	ReportFile = &Input{Name: "report-file", Description: "Where to write the JSON report. Default: pgfleet-<mode>-report.json in the workspace in Actions (the output is relative to it, for actions/upload-artifact), in the temp directory on the CLI. As the action, give a path relative to the workspace: one outside it is refused (the container's files vanish when the step ends)."}
)

// DryRun is declared here because several modes read it (each lists it in
// its Inputs); it is not a shared input.
var DryRun = &Input{Name: "dry-run", Default: "false", Bool: true, Description: "Report what would be done; change nothing."}

// GitHubToken is declared here because two modes read it: sync-secrets
// writes secrets with it, and migrate's rehearsal comments on the pull
// request.
var GitHubToken = &Input{Name: "github-token", Secret: true, Env: "GITHUB_TOKEN", Description: "Required for sync-secrets: a token that can write Actions secrets (the workflow's own GITHUB_TOKEN cannot): a fine-grained token or GitHub App installation token with Secrets and Variables read and write (environment target: Environments read and write, and Administration write to create environments; organization target: the organization's Secrets and Variables). migrate with rehearse: the workflow's GITHUB_TOKEN with pull-requests: write, to post the verdict on the pull request. CLI: also GITHUB_TOKEN."}

// Shared are the inputs every mode reads: where tenants come from, which
// are selected, how the run goes, and where the report is written.
var Shared = []*Input{
	Mode,
	NeonAPIKey,
	NeonAPIURL,
	NeonOrgID,
	NeonRateLimit,
	Database,
	Role,
	Branch,
	DatabaseURLs,
	DatabaseURLsFile,
	Projects,
	ExcludeProjects,
	Shard,
	Concurrency,
	TenantTimeout,
	MaxFailures,
	Canary,
	ReportFile,
}

// SharedOutputs are the outputs every mode sets.
var SharedOutputs = []Output{
	{Name: "total", Description: "Tenants selected."},
	{Name: "succeeded", Description: "Tenants whose work changed something and finished (dry run: tenants with something to do)."},
	{Name: "up-to-date", Description: "Tenants with nothing to do."},
	{Name: "failed", Description: "Tenants that failed (each with its reason in the summary and report)."},
	{Name: "skipped", Description: "Tenants never started: canary failed, max-failures reached, or the run was cancelled."},
	{Name: "cancelled", Description: "Tenants interrupted by a cancelled run."},
	{Name: "failed-projects", Description: "The failed tenants' project ids (database-urls: their names), one per line: give it to projects to retry just those."},
	{Name: "report-file", Description: "Path of the JSON report, one record per tenant (relative to the workspace in Actions)."},
}
