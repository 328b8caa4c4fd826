package report

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
)

// readBack writes r as its JSON report and reads it back, as report merge
// does with the shards' files.
func readBack(t *testing.T, r Run) Run {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&b)
	if err != nil {
		t.Fatalf("ReadJSON: %v\n%s", err, b.String())
	}
	return back
}

func TestReadJSONKeepsTheSharedFields(t *testing.T) {
	r := fiveTenants()
	r.Stopped = fmt.Errorf("%w (1) reached", fleet.ErrMaxFailures)
	r.SourceErr = errors.New("Neon API: 503")
	back := readBack(t, r)
	if back.Mode != "tidy" || !back.Started.Equal(t0) || back.Duration != r.Duration.Truncate(time.Millisecond) ||
		back.Stopped == nil || back.Stopped.Error() != r.Stopped.Error() || back.SourceErr == nil || back.SourceErr.Error() != "Neon API: 503" {
		t.Errorf("run fields: got %+v", back)
	}
	if len(back.Results) != len(r.Results) {
		t.Fatalf("%d tenants read back, want %d", len(back.Results), len(r.Results))
	}
	for i, got := range back.Results {
		want := r.Results[i]
		if got.Tenant.ID != want.Tenant.ID || got.Tenant.Name != want.Tenant.Name || got.Status != want.Status ||
			got.Canary != want.Canary || got.Duration != want.Duration || !got.Started.Equal(want.Started) {
			t.Errorf("tenant %d: got %+v, want %+v", i, got, want)
		}
		if (got.Err == nil) != (want.Err == nil) || (got.Err != nil && got.Err.Error() != want.Err.Error()) {
			t.Errorf("tenant %d: error %v, want %v", i, got.Err, want.Err)
		}
		if strings.Contains(got.Tenant.URL, "pw-") {
			t.Errorf("tenant %d: a password came back from the report: %s", i, got.Tenant.URL)
		}
	}
	// The summary of the read-back run names hosts as the original does.
	if s := Summary(back, 0); !strings.Contains(s, "zeta") || !strings.Contains(s, "deadlock detected") {
		t.Errorf("summary of the read-back run lacks the failure:\n%s", s)
	}
}

func TestReadJSONRefusesOtherFiles(t *testing.T) {
	for _, text := range []string{``, `[1,2]`, `{"tenants":[]}`, `{"mode":"migrate","tenants":[{"id":"a","status":"exploded"}]}`} {
		if _, err := ReadJSON(strings.NewReader(text)); err == nil {
			t.Errorf("ReadJSON(%q) accepted it", text)
		}
	}
}

// shardRun is a migrate-like run of the given tenants, every one with status.
func shardRun(start time.Time, took time.Duration, status fleet.Status, ids ...string) Run {
	r := Run{Mode: "tidy", View: tidyView{}, Started: start, Duration: took}
	for _, id := range ids {
		res := fleet.Result{Tenant: tn(id, "name-"+id), Status: status, Started: start, Duration: time.Second}
		if status == fleet.Failed {
			res.Err = errors.New("boom in " + id)
		}
		r.Results = append(r.Results, res)
	}
	return r
}

func TestMergeCanaryAndShards(t *testing.T) {
	canary := shardRun(t0, 10*time.Second, fleet.Succeeded, "p1", "p2")
	for i := range canary.Results {
		canary.Results[i].Canary = true
	}
	// Shard 1 holds the canaries again (up to date by then) and one failure.
	shard1 := shardRun(t0.Add(20*time.Second), 30*time.Second, fleet.UpToDate, "p1", "p3")
	shard1.Results = append(shard1.Results, shardRun(t0, 0, fleet.Failed, "p4").Results...)
	shard2 := shardRun(t0.Add(15*time.Second), 60*time.Second, fleet.Succeeded, "p2", "p5", "p6")
	merged, err := Merge([]Part{
		{Name: "canary.json", Run: readBack(t, canary)},
		{Name: "shard-1.json", Run: readBack(t, shard1)},
		{Name: "shard-2.json", Run: readBack(t, shard2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := fleet.Count(merged.Results)
	if c.Total != 6 || c.Succeeded != 4 || c.UpToDate != 1 || c.Failed != 1 {
		t.Errorf("counts %+v, want 6 tenants: 4 succeeded (p1, p2 by the canary; p5, p6), 1 up to date (p3), 1 failed (p4)", c)
	}
	if !merged.Started.Equal(t0) || merged.Duration != 75*time.Second {
		t.Errorf("merged run from %v for %v, want from the earliest start to the latest end (%v, 75s)", merged.Started, merged.Duration, t0)
	}
	if merged.OK() {
		t.Errorf("a merged run with a failed tenant reads as OK")
	}

	s := Summary(merged, 0)
	if !strings.Contains(title(s), "6 tenants, 1 failed") {
		t.Errorf("verdict %q, want the whole fleet's", title(s))
	}
	reports := tableRows(section(s, "Reports"))
	if len(reports) != 3 || reports[1][0] != "shard-1.json" || reports[1][1] != "3" || reports[1][4] != "1" {
		t.Errorf("reports table %v, want one row per report with its counts", reports)
	}
	if !strings.Contains(section(s, "Reports"), "2 tenants are in more than one report") {
		t.Errorf("the Reports section does not say the canaries were counted once:\n%s", section(s, "Reports"))
	}
	rows := tableRows(section(s, "Tenants"))
	if len(rows) != 6 {
		t.Fatalf("%d tenant rows, want 6:\n%s", len(rows), s)
	}
	for _, row := range rows {
		if row[1] == "p1" && (row[2] != "✅ succeeded · canary" || row[3] != "canary.json, shard-1.json") {
			t.Errorf("p1 row %v: want succeeded as a canary, found in the canary job's and shard 1's reports", row)
		}
	}
	if !strings.Contains(section(s, "Failures"), "boom in p4") {
		t.Errorf("failures lack p4's error:\n%s", section(s, "Failures"))
	}
}

func TestMergeRefusesMixedReports(t *testing.T) {
	a := shardRun(t0, time.Second, fleet.Succeeded, "p1")
	b := shardRun(t0, time.Second, fleet.Succeeded, "p2")
	b.Mode = "backup"
	if _, err := Merge([]Part{{Name: "a.json", Run: a}, {Name: "b.json", Run: b}}); err == nil || !strings.Contains(err.Error(), "b.json a backup report") {
		t.Errorf("merging two modes: %v, want an error naming both", err)
	}
	b.Mode, b.DryRun = "tidy", true
	if _, err := Merge([]Part{{Name: "a.json", Run: a}, {Name: "b.json", Run: b}}); err == nil {
		t.Error("merging a dry run with a real run was accepted")
	}
	if _, err := Merge(nil); err == nil {
		t.Error("merging nothing was accepted")
	}
}

func TestPartName(t *testing.T) {
	all := []string{"r/shard-0/pgfleet-migrate-report.json", "r/shard-1/pgfleet-migrate-report.json", "r/canary.json"}
	for path, want := range map[string]string{
		all[0]: "shard-0",
		all[2]: "canary.json",
	} {
		if got := PartName(path, all); got != want {
			t.Errorf("PartName(%q) = %q, want %q", path, got, want)
		}
	}
}
