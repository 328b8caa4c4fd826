package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/report"
)

// With github-token and a pull request event, a rehearsal's verdict is
// posted on the pull request as one comment, found again by its marker and
// edited on every push: a reviewer sees the latest verdict in one place,
// and the thread is not buried under one comment per push.

// rehearsalMarker is the hidden line the comment is found by.
const rehearsalMarker = "<!-- pgfleet:migrate-rehearsal -->"

// maxCommentRows bounds each table of the comment: the failing and slowest
// tenants, not 1,000 rows.
const maxCommentRows = 15

// pullRequest is where the comment goes.
type pullRequest struct {
	apiURL, owner, repo string
	number              int
}

// pullRequestOf reads the pull request of the event that started the run
// (GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_REPOSITORY); ok is false
// outside a pull request.
func pullRequestOf(getenv func(string) string) (pullRequest, bool) {
	switch getenv("GITHUB_EVENT_NAME") {
	case "pull_request", "pull_request_target":
	default:
		return pullRequest{}, false
	}
	owner, repo, ok := strings.Cut(getenv("GITHUB_REPOSITORY"), "/")
	if !ok {
		return pullRequest{}, false
	}
	b, err := os.ReadFile(getenv("GITHUB_EVENT_PATH"))
	if err != nil {
		return pullRequest{}, false
	}
	var ev struct {
		Number      int `json:"number"`
		PullRequest struct {
			Number int `json:"number"`
		} `json:"pull_request"`
	}
	if json.Unmarshal(b, &ev) != nil {
		return pullRequest{}, false
	}
	n := ev.PullRequest.Number
	if n == 0 {
		n = ev.Number
	}
	if n <= 0 {
		return pullRequest{}, false
	}
	api := getenv("GITHUB_API_URL")
	if api == "" {
		api = github.DefaultBaseURL
	}
	return pullRequest{apiURL: api, owner: owner, repo: repo, number: n}, true
}

// Finish posts (or updates) the pull request comment. A failure to comment
// is a warning: the verdict is in the summary and the exit status already.
func (r *Rehearsal) Finish(ctx context.Context, results []fleet.Result) error {
	if r.githubToken == "" || r.getenv == nil {
		return nil
	}
	pr, ok := pullRequestOf(r.getenv)
	if !ok {
		return nil
	}
	client, err := github.New(github.Options{BaseURL: pr.apiURL, Token: r.githubToken, Redact: r.scrub})
	if err == nil {
		_, err = client.UpsertComment(ctx, pr.owner, pr.repo, pr.number, rehearsalMarker, r.comment(results))
	}
	if err != nil && r.warn != nil {
		r.warn("rehearsal: could not comment on pull request #%d (the verdict is in the summary): %v", pr.number, err)
	}
	return nil
}

// comment is the pull request comment: the verdict, the failing tenants
// with their errors, the slowest files, the totals. Every cell is cut, so
// its size is bounded whatever the fleet.
func (r *Rehearsal) comment(results []fleet.Result) string {
	failing, wouldFail, rehearsedResults := classify(results)
	rehearsed := len(rehearsedResults)
	var slows []slowFile
	for _, res := range rehearsedResults {
		if f, ok := res.Detail.(*RehearsalDetail).slowest(); ok {
			slows = append(slows, slowFile{res.Tenant.String(), f})
		}
	}
	var b strings.Builder
	b.WriteString(rehearsalMarker + "\n")
	if len(failing) > 0 {
		fmt.Fprintf(&b, "### ❌ Migration rehearsal: would fail on %d of %d tenants\n\n", wouldFail, len(results))
		if n := len(failing) - wouldFail; n > 0 {
			fmt.Fprintf(&b, "%s not be rehearsed (see why below).\n\n", report.Plural(n, "tenant could", "tenants could"))
		}
	} else {
		fmt.Fprintf(&b, "### ✅ Migration rehearsal: would succeed on all %d tenants\n\n", len(results))
	}
	fmt.Fprintf(&b, "%d files from `%s` (latest %s) applied to a throwaway Neon branch of %s, as a real run would; production was not touched.",
		len(r.set.Files), cell(r.set.Dir, 100), r.set.Latest(), report.Plural(rehearsed, "tenant", "tenants"))
	if n := r.sample.note(); n != "" {
		b.WriteString(" " + cell(n, 300))
	}
	b.WriteString("\n\n")
	if len(failing) > 0 {
		b.WriteString("| tenant | file | error |\n|---|---|---|\n")
		for _, res := range failing[:min(len(failing), maxCommentRows)] {
			file, why := failureOf(res)
			fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(res.Tenant.String(), 120), cell(file, 120), cell(r.scrub(why), 400))
		}
		if len(failing) > maxCommentRows {
			fmt.Fprintf(&b, "\n… and %d more: see the run's summary and report.\n", len(failing)-maxCommentRows)
		}
		b.WriteString("\n")
	}
	if len(slows) > 0 {
		sortSlowest(slows)
		b.WriteString("<details><summary>Slowest files (about how long a production run would hold their locks)</summary>\n\n| tenant | slowest file | took |\n|---|---|--:|\n")
		for _, s := range slows[:min(len(slows), maxCommentRows)] {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(s.tenant, 120), cell(s.f.File, 120), seconds(s.f.Seconds))
		}
		b.WriteString("\n</details>\n\n")
	}
	fmt.Fprintf(&b, "Branches created %d, deleted %d; %d Neon API calls.", r.created.Load(), r.deleted.Load(), r.client.Calls()-r.calls0)
	if r.expiryRefused.Load() {
		b.WriteString(" Neon refused expires_at: no expiry net was set.")
	}
	if u := r.runURL(); u != "" {
		fmt.Fprintf(&b, " [The run](%s).", u)
	}
	b.WriteString("\n")
	return b.String()
}

// runURL links the run that made the comment, when known.
func (r *Rehearsal) runURL() string {
	server, repo, id := r.getenv("GITHUB_SERVER_URL"), r.getenv("GITHUB_REPOSITORY"), r.getenv("GITHUB_RUN_ID")
	if server == "" || repo == "" || !runIDPattern.MatchString(id) {
		return ""
	}
	return server + "/" + repo + "/actions/runs/" + id
}

// cell makes text safe inside a Markdown table cell, cut to n runes.
func cell(s string, n int) string {
	s = strings.NewReplacer("\r", " ", "\n", " ", "|", `\|`, "<", "&lt;", ">", "&gt;", "`", "'").Replace(s)
	if rs := []rune(s); len(rs) > n {
		s = string(rs[:n]) + "…"
	}
	return s
}
