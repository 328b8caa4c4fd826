package backup

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// results are three backed-up tenants (servers 15, 16, 15) and one that
// failed, each with the URL the runner resolved.
func drillResults() []fleet.Result {
	res := func(name, url, version string, status fleet.Status) fleet.Result {
		d := &Detail{ServerVersion: version, Object: name + "/20261122T030000Z.dump.zst", Manifest: name + "/20261122T030000Z.manifest.json", complete: status == fleet.Succeeded}
		return fleet.Result{Tenant: tenant.Tenant{ID: name, Name: name, URL: url}, Status: status, Detail: d}
	}
	return []fleet.Result{
		res("a", "postgres://a:pw@db1.example.com/a", "15.8", fleet.Succeeded),
		res("b", "postgres://b:pw@db2.example.com:5433/b?sslmode=require", "16.4 (Debian)", fleet.Succeeded),
		res("c", "postgres://c:pw@db1.example.com/c", "15.8", fleet.Succeeded),
		res("d", "postgres://d:pw@db1.example.com/d", "", fleet.Failed),
	}
}

func drillJob(target string, count, targetMajor int) *Job {
	return NewJob(Options{Drill: &drill{targetURL: target, target: tenant.HostDB(target), count: count, targetMajor: targetMajor, targetVer: "x", timeout: time.Minute, log: func(string, ...any) {}}})
}

// Refusals that hold for the whole drill fail every chosen drill with the
// reason, before anything is written (no store, no database is reached
// here: the job has neither); only backed-up tenants are chosen, as many as
// drill-count, and the outputs name them.
func TestDrillRefusedBeforeWriting(t *testing.T) {
	for _, c := range []struct {
		name   string
		target string
		major  int
		edit   func([]fleet.Result)
		want   string
	}{
		{"a tenant, respelled", "postgres://scratch:other@DB2.example.com.:5433/b", 18, nil, "drill-target-url is the database of tenant b (db2.example.com/b)"},
		{"older than the newest server", "postgres://s:p@scratch.example.com/s", 15, nil, "runs PostgreSQL x, older than the newest server dumped in this run (b (db2.example.com/b), PostgreSQL 16.4 (Debian))"},
		{"a tenant never resolved", "postgres://s:p@scratch.example.com/s", 18, func(rs []fleet.Result) { rs[3].Tenant.URL = "" }, "tenant d's connection string could not be resolved"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := drillResults()
			if c.edit != nil {
				c.edit(rs)
			}
			j := drillJob(c.target, 2, c.major)
			err := j.Finish(context.Background(), rs)
			if err == nil || !strings.Contains(err.Error(), "2 of 2 backups could not be restored") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Finish: %v", err)
			}
			var chosen []string
			for _, r := range rs {
				d := r.Detail.(*Detail)
				if d.Drill == nil {
					continue
				}
				chosen = append(chosen, r.Tenant.ID)
				if r.Tenant.ID == "d" {
					t.Error("a tenant whose backup failed was drilled")
				}
				if r.Status != fleet.Failed || d.Drill.OK || !strings.Contains(r.Err.Error(), "restore drill: the backup "+d.Object+" could not be restored") || !strings.Contains(d.Drill.Error, c.want) {
					t.Errorf("%s: status %s, err %v, drill %+v", r.Tenant.ID, r.Status, r.Err, d.Drill)
				}
			}
			out := j.Outputs(rs)
			drilled := strings.Split(out["drilled"], "\n")
			slices.Sort(drilled) // in drill order, which is random
			if len(chosen) != 2 || !slices.Equal(drilled, chosen) || out["drill-failed"] != out["drilled"] {
				t.Errorf("chosen %v, outputs %v", chosen, out)
			}
			secs := j.Sections(rs)
			if len(secs) != 2 || secs[1].Title != "Restore drill" || len(secs[1].Rows) != 2 || !strings.HasPrefix(secs[1].Rows[0][5], "❌ not restored") {
				t.Errorf("sections: %+v", secs)
			}
		})
	}
}

// The section says why no drill ran: the run did not reach every tenant
// (Finish was not called), or nothing was backed up.
func TestDrillNotRun(t *testing.T) {
	rs := drillResults()
	j := drillJob("postgres://s:p@scratch.example.com/s", 1, 18)
	if secs := j.Sections(rs); len(secs) != 2 || !strings.Contains(secs[1].Note, "Not run: the run did not reach every tenant") {
		t.Errorf("not finished: %+v", secs)
	}
	for i := range rs {
		rs[i].Status, rs[i].Err = fleet.Failed, errors.New("pg_dump failed")
	}
	if err := j.Finish(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	if secs := j.Sections(rs); !strings.Contains(secs[1].Note, "no tenant was backed up in this run") {
		t.Errorf("nothing backed up: %+v", secs[1])
	}
	if out := j.Outputs(rs); out["drilled"] != "" || out["drill-failed"] != "" {
		t.Errorf("outputs %v", out)
	}
	// No drill asked: no section, empty outputs.
	j = NewJob(Options{})
	if secs := j.Sections(drillResults()); len(secs) != 1 {
		t.Errorf("sections without a drill: %+v", secs)
	}
}
