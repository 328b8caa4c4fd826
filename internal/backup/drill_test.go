package backup

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
	"github.com/pgfleet/pgfleet/internal/storage/storagetest"
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

// deferred is a detail as Work leaves it with a drill set: complete, its
// retention waiting for Finish.
func deferred(d *Detail, stamp string) {
	d.pruneStamp, d.unpruned, d.RetentionNote = stamp, true, notPrunedNotReached
}

// A refusal that holds for the whole drill is the run's error (Finish's),
// found before anything is written (no store, no database is reached here:
// the job has neither): no tenant's status changes (their backups were
// made, and a retry of them would meet the same refusal), none is listed
// as drilled or failed, the section and its row say "not run" with the
// reason, and retention, which waited for the drill, prunes nothing and
// says so.
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
			for _, r := range rs[:3] {
				deferred(r.Detail.(*Detail), "20261122T030000Z")
			}
			if c.edit != nil {
				c.edit(rs)
			}
			j := drillJob(c.target, 2, c.major)
			err := j.Finish(context.Background(), rs)
			if err == nil || !strings.HasPrefix(err.Error(), "restore drill not run: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Finish: %v", err)
			}
			for i, r := range rs {
				d := r.Detail.(*Detail)
				if want := drillResults()[i].Status; r.Status != want || r.Err != nil || d.Drill != nil {
					t.Errorf("%s: status %s (want %s), err %v, drill %+v", r.Tenant.ID, r.Status, want, r.Err, d.Drill)
				}
				if i < 3 && (d.RetentionNote != notPrunedRefused || d.Cells()[3] != "not pruned") {
					t.Errorf("%s: retention note %q, pruned cell %q", r.Tenant.ID, d.RetentionNote, d.Cells()[3])
				}
			}
			if out := j.Outputs(rs); out["drilled"] != "" || out["drill-failed"] != "" {
				t.Errorf("outputs %v", out)
			}
			secs := j.Sections(rs)
			if len(secs) != 2 || secs[1].Title != "Restore drill" || len(secs[1].Rows) != 1 ||
				!strings.HasPrefix(secs[1].Note, "Not run: refused before anything was restored") || strings.Contains(secs[1].Note, "failed") ||
				!strings.HasPrefix(secs[1].Rows[0][5], "not run: ") || !strings.Contains(secs[1].Rows[0][5], c.want) {
				t.Errorf("drill section: %+v", secs)
			}
			if row := secs[0].Rows; len(row) != 1 || row[0][0] != "every tenant" || row[0][1] != notPrunedRefused {
				t.Errorf("retention rows: %v", row)
			}
		})
	}
}

// failingList is a folder whose listing of one prefix fails.
type failingList struct {
	*dir.Store
	prefix string
}

func (f failingList) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	if prefix == f.prefix {
		return nil, errors.New("503 Slow Down")
	}
	return f.Store.List(ctx, prefix)
}

// Retention after the drill: a tenant whose new backup failed its drill
// keeps every backup (with keep-last 1 it would otherwise have lost the
// one good backup it had) and says so; the others are pruned as they
// would have been in Work, with what went recorded; a prune that fails
// fails its tenant with the error Work gives.
func TestPruneAfterDrill(t *testing.T) {
	ctx := context.Background()
	store, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rs := drillResults()
	rs[3].Status, rs[3].Detail.(*Detail).complete = fleet.Succeeded, true // e: backed up, its prune fails
	rs[3].Tenant = tenant.Tenant{ID: "e", Name: "e", URL: "postgres://e:pw@db1.example.com/e"}
	current, old := ago(0), []string{ago(10 * day), ago(20 * day)}
	for _, r := range rs {
		f := archive.Folder(r.Tenant.Name, r.Tenant.ID)
		for _, s := range append([]string{current}, old...) {
			for _, k := range []string{f + "/" + s + ".dump.zst", f + "/" + s + ".manifest.json"} {
				if _, err := store.Put(ctx, k, strings.NewReader("x")); err != nil {
					t.Fatal(err)
				}
			}
		}
		deferred(r.Detail.(*Detail), current)
	}
	j := drillJob("postgres://s:p@scratch.example.com/s", 2, 18)
	j.o.Store = failingList{Store: store, prefix: archive.Folder("e", "e") + "/"}
	j.o.RetentionDays, j.o.KeepLast, j.o.Now = 7, 1, func() time.Time { return now }
	j.o.Drill.ran, j.o.Drill.offered, j.o.Drill.concurrency = true, 4, 2
	detOf := func(i int) *Detail { return rs[i].Detail.(*Detail) }
	detOf(0).Drill = &Drill{OK: true}
	detOf(1).Drill = &Drill{Error: "the dump does not match its manifest"}
	rs[1].Status = fleet.Failed // as the drill leaves it
	j.pruneAfterDrill(ctx, rs)

	for i, want := range map[int][]string{0: old, 1: nil, 2: old} {
		if d := detOf(i); !slices.Equal(d.Pruned, want) {
			t.Errorf("%s: pruned %v, want %v", rs[i].Tenant.ID, d.Pruned, want)
		}
	}
	if n := len(storagetest.Keys(t, store, archive.Folder("b", "b")+"/")); n != 6 {
		t.Errorf("the drill-failed tenant's folder holds %d objects, want all 6", n)
	}
	if d := detOf(1); d.RetentionNote != notPrunedDrillFail || d.Cells()[3] != "not pruned" {
		t.Errorf("drill failed: note %q, cell %q", d.RetentionNote, d.Cells()[3])
	}
	for _, i := range []int{0, 2} {
		if d := detOf(i); d.RetentionNote != "" || d.Cells()[3] != "2" || rs[i].Status != fleet.Succeeded {
			t.Errorf("%s: note %q, cell %q, status %s", rs[i].Tenant.ID, d.RetentionNote, d.Cells()[3], rs[i].Status)
		}
	}
	if r := rs[3]; r.Status != fleet.Failed || r.Err == nil || !strings.Contains(r.Err.Error(), "pruning the folder failed: 503 Slow Down") || detOf(3).Cells()[3] != "not pruned" {
		t.Errorf("failed prune: status %s, err %v, cell %q", r.Status, r.Err, detOf(3).Cells()[3])
	}
	rows := map[string]string{}
	for _, row := range j.Sections(rs)[0].Rows {
		id, _, _ := strings.Cut(row[0], " ")
		rows[id] = row[1]
	}
	if rows["b"] != notPrunedDrillFail || !strings.HasPrefix(rows["e"], "not pruned: pruning failed") || rows["a"] != strings.Join(old, ", ") {
		t.Errorf("retention rows: %v", rows)
	}

	// Cancelled during the drill: nothing more is pruned, and each says so.
	for _, r := range rs {
		deferred(r.Detail.(*Detail), current)
	}
	rs[0].Status = fleet.Cancelled // its drill was cut short
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	j.pruneAfterDrill(cctx, rs)
	for _, i := range []int{0, 2, 3} {
		if d := detOf(i); d.RetentionNote != notPrunedCancelled || d.Cells()[3] != "not pruned" {
			t.Errorf("cancelled: %s: note %q, cell %q", rs[i].Tenant.ID, d.RetentionNote, d.Cells()[3])
		}
	}
}

// The section says why no drill ran: the run did not reach every tenant
// (Finish was not called), or nothing was backed up.
func TestDrillNotRun(t *testing.T) {
	rs := drillResults()
	for _, r := range rs[:3] {
		deferred(r.Detail.(*Detail), "20261122T030000Z")
	}
	j := drillJob("postgres://s:p@scratch.example.com/s", 1, 18)
	secs := j.Sections(rs)
	if len(secs) != 2 || !strings.Contains(secs[1].Note, "Not run: the run did not reach every tenant") || len(secs[1].Rows) != 1 {
		t.Errorf("not finished: %+v", secs)
	}
	// Retention waited for the drill: nothing was pruned, and the
	// summary says so rather than "none".
	if row := secs[0].Rows; len(row) != 1 || row[0][0] != "every tenant" || row[0][1] != notPrunedNotReached {
		t.Errorf("retention rows: %v", row)
	}
	if c := rs[0].Detail.Cells()[3]; c != "not pruned" {
		t.Errorf("pruned cell %q", c)
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
