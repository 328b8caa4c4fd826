package syncsecrets

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/config"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/tenant"
	"github.com/pgfleet/pgfleet/internal/testenv/githubapi"
)

// project is a tenant as the fake source knows it.
type project struct {
	id, name, url string
	resolveErr    error
}

func projects(n int) []project {
	out := make([]project, n)
	for i := range out {
		out[i] = project{
			id:   fmt.Sprintf("proj-%04d", i+1),
			name: fmt.Sprintf("customer-%04d", i+1),
			url:  fmt.Sprintf("postgresql://neondb_owner:pw-%04d-Secret@ep-host-%04d.us-east-2.aws.neon.tech/neondb?sslmode=require", i+1, i+1),
		}
	}
	return out
}

// pooledURL is what the fake source hands out for pooled=true, as Neon does.
func pooledURL(raw string) string {
	u, _ := url.Parse(raw)
	first, rest, _ := strings.Cut(u.Hostname(), ".")
	u.Host = first + "-pooler." + rest
	return u.String()
}

// fakeSource lists projects, resolving each one's URL lazily as Neon does,
// and counts the resolutions in *resolved.
func fakeSource(projects []project, pooled bool, resolved *int, mu *sync.Mutex) tenant.Source {
	tenants := make(tenant.Static, len(projects))
	for i, p := range projects {
		tenants[i] = tenant.Tenant{ID: p.id, Name: p.name, Resolve: func(context.Context) (string, error) {
			mu.Lock()
			*resolved++
			mu.Unlock()
			if p.resolveErr != nil {
				return "", p.resolveErr
			}
			if pooled {
				return pooledURL(p.url), nil
			}
			return p.url, nil
		}}
	}
	return tenants
}

// rig is one GitHub emulator with a repository o/r, and what a run saw.
type rig struct {
	t        *testing.T
	gh       *githubapi.Server
	neonKey  string
	warnings []string
	secrets  []string // registered with env.Secret
	mu       sync.Mutex
	resolved int
}

func newRig(t *testing.T) *rig {
	t.Helper()
	gh := githubapi.Start(githubapi.Config{Token: "ghp-test-token-123456"})
	t.Cleanup(gh.Close)
	gh.AddRepository("o", "r")
	return &rig{t: t, gh: gh, neonKey: "neon-api-key-abcdef"}
}

// result is one prepared and (unless Prepare refused) finished run.
type result struct {
	job       *Job
	err       error // Prepare's error, or the inputs' problems
	outcome   fleet.Outcome
	finishErr error // Finish's error (prune)
	outputs   map[string]string
	writes    int // writes the emulator answered during the run
	requests  int
}

func (r *rig) table() *input.Table {
	return input.NewTable([]input.ModeDecl{{Name: Mode{}.Name(), Inputs: Mode{}.Inputs(), Outputs: Mode{}.Outputs()}})
}

// run prepares and runs sync-secrets over ps with inputs (github-token,
// github-api-url and repository are filled in unless given).
func (r *rig) run(ps []project, inputs map[string]string, cfg ...func(*config.Config)) result {
	r.t.Helper()
	in := map[string]string{
		"github-token":   "ghp-test-token-123456",
		"github-api-url": r.gh.URL(),
		"repository":     "o/r",
	}
	for k, v := range inputs {
		in[k] = v
	}
	values := input.NewValues(r.table(), func(name string) string { return in[name] })
	c := config.Config{Neon: config.Neon{APIKey: r.neonKey}, Concurrency: 4, TenantTimeout: time.Minute}
	for _, f := range cfg {
		f(&c)
	}
	env := mode.Env{
		Inputs: values,
		Config: c,
		Getenv: func(k string) string {
			if k == "PGFLEET_GITHUB_WRITE_GAP" {
				if v, ok := in["(write-gap)"]; ok {
					return v
				}
				return "0"
			}
			return ""
		},
		Secret: func(s string) {
			r.mu.Lock()
			r.secrets = append(r.secrets, s)
			r.mu.Unlock()
		},
		Warn: func(format string, a ...any) {
			r.mu.Lock()
			r.warnings = append(r.warnings, fmt.Sprintf(format, a...))
			r.mu.Unlock()
		},
		Source: func(pooled bool) tenant.Source {
			return fakeSource(ps, pooled, &r.resolved, &r.mu)
		},
	}
	before := len(r.gh.Writes())
	beforeReq := len(r.gh.Requests())
	job, err := Mode{}.Prepare(context.Background(), env)
	if err == nil {
		err = values.Err()
	}
	res := result{err: err}
	if err != nil {
		res.writes = len(r.gh.Writes()) - before
		return res
	}
	res.job = job.(*Job)
	res.outcome = fleet.Run(context.Background(), fleet.Options{Concurrency: c.Concurrency, TenantTimeout: c.TenantTimeout}, res.job.Source(), res.job.Work)
	res.finishErr = res.job.Finish(context.Background(), res.outcome.Results) // as the app does after the fleet
	res.outputs = res.job.Outputs(res.outcome.Results)
	res.writes = len(r.gh.Writes()) - before
	res.requests = len(r.gh.Requests()) - beforeReq
	return res
}

func (r *rig) mustRun(ps []project, inputs map[string]string, cfg ...func(*config.Config)) result {
	r.t.Helper()
	res := r.run(ps, inputs, cfg...)
	if res.err != nil {
		r.t.Fatalf("prepare: %v", res.err)
	}
	return res
}

func (res result) detail(t *testing.T, id string) *Detail {
	t.Helper()
	for _, r := range res.outcome.Results {
		if r.Tenant.ID == id {
			d, _ := r.Detail.(*Detail)
			return d
		}
	}
	t.Fatalf("no result for %s", id)
	return nil
}

func (res result) statuses() map[fleet.Status]int {
	m := map[fleet.Status]int{}
	for _, r := range res.outcome.Results {
		m[r.Status]++
	}
	return m
}

func wantOutputs(t *testing.T, res result, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if res.outputs[k] != v {
			t.Fatalf("output %s = %q, want %q (all: %v)", k, res.outputs[k], v, res.outputs)
		}
	}
}
