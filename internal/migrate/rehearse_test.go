package migrate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/neon"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

func TestPickSample(t *testing.T) {
	var all []tenant.Tenant
	for i := range 100 {
		all = append(all, tenant.Tenant{ID: fmt.Sprintf("p-%03d", i), Name: fmt.Sprintf("n%03d", i), StorageBytes: int64(i%50) << 20})
	}
	got := pickSample(all, 3, 0, []string{"n007"})
	why := map[string]string{}
	for _, p := range got {
		if why[p.t.ID] != "" {
			t.Fatalf("%s picked twice", p.t.ID)
		}
		why[p.t.ID] = p.why
	}
	if len(got) != 7 || got[0].t.ID != "p-007" || got[0].why != "canary" {
		t.Fatalf("picked %v: want the canary first, then 3 largest and 3 random", got)
	}
	// The largest: sizes 49 (p-049, p-099) and 48 (p-048), in listing order.
	for _, id := range []string{"p-049", "p-099", "p-048"} {
		if why[id] != "largest" {
			t.Errorf("%s: %q, want largest", id, why[id])
		}
	}
	random := 0
	for _, w := range why {
		if w == "random" {
			random++
		}
	}
	if random != 3 {
		t.Errorf("%d random, want 3", random)
	}
	// Canary count: the first listed.
	if got := pickSample(all, 1, 2, nil); got[0].t.ID != "p-000" || got[1].t.ID != "p-001" || got[1].why != "canary" || len(got) != 4 {
		t.Errorf("canary count 2: %v", got)
	}
	// A sample larger than the fleet takes each tenant once.
	if got := pickSample(all[:5], 10, 0, nil); len(got) != 5 {
		t.Errorf("sample of 10 from 5: %d", len(got))
	}
}

func TestFileTimings(t *testing.T) {
	d := &Detail{
		Applied:    []string{"1_a.sql", "2_b.sql"},
		FailedFile: "3_c.sql",
		Log:        "Applying: 1_a.sql\nApplied: 1_a.sql in 12.5ms\nApplying: 2_b.sql\nApplied: 2_b.sql in 1.2s\nApplying: 3_c.sql\n",
	}
	got := fileTimings(d)
	if len(got) != 3 || got[0].Seconds != 0.0125 || got[1].Seconds != 1.2 || !got[1].OK || got[2].OK || got[2].File != "3_c.sql" {
		t.Errorf("timings %+v", got)
	}
	rd := &RehearsalDetail{Detail: d, Files: got, WouldFail: true}
	if c := strings.Join(rd.Cells(), " | "); c != "would fail at 3_c.sql | 2_b.sql 1.2s | 2 of 3" {
		t.Errorf("cells %q", c)
	}
}

func TestRehearsalCommentStaysUnderGitHubsLimit(t *testing.T) {
	r := &Rehearsal{
		Job:    &Job{Migrator: New(&Set{Dir: "db/migrations"}, Options{})},
		client: neon.New(neon.Options{}),
		getenv: func(string) string { return "" },
		scrub:  func(s string) string { return strings.ReplaceAll(s, "hunter2", "***") },
	}
	var results []fleet.Result
	for i := range 1000 {
		d := &RehearsalDetail{Detail: &Detail{FailedFile: "20250101000000_" + strings.Repeat("long_name_", 20) + ".sql"}, BranchID: "br-x",
			Files: []FileTiming{{File: strings.Repeat("f", 300), OK: true, Seconds: float64(i)}}, WouldFail: i%2 == 0}
		res := fleet.Result{Tenant: tenant.Tenant{ID: fmt.Sprintf("p-%04d", i), Name: strings.Repeat("|name<b>", 40)}, Status: fleet.Succeeded, Detail: d}
		if d.WouldFail {
			res.Status, res.Err = fleet.Failed, fmt.Errorf("ERROR: hunter2 %s", strings.Repeat("very long error ", 300))
		}
		results = append(results, res)
	}
	body := r.comment(results)
	if n := len([]rune(body)); n >= github.MaxCommentBody || n > 20000 {
		t.Errorf("comment of %d characters for 1,000 tenants", n)
	}
	for _, want := range []string{rehearsalMarker, "would fail on 500 of 1000 tenants", "… and 485 more", "Slowest files"} {
		if !strings.Contains(body, want) {
			t.Errorf("comment lacks %q", want)
		}
	}
	if strings.Contains(body, "hunter2") || strings.Contains(body, "<b>") {
		t.Error("comment holds a credential or raw HTML")
	}
}
