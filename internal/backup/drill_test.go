package backup

import (
	"context"
	"errors"
	"io"
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

// cancellingStore runs hook on each Get or List of a key under prefix,
// and returns the hook's error; del, when set, answers each Delete.
type cancellingStore struct {
	*dir.Store
	prefix string
	hook   func(key string) error
	del    func(key string) error
}

func (s cancellingStore) Delete(ctx context.Context, key string) error {
	if s.del != nil {
		if err := s.del(key); err != nil {
			return err
		}
	}
	return s.Store.Delete(ctx, key)
}

func (s cancellingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasPrefix(key, s.prefix) {
		return nil, s.hook(key)
	}
	return s.Store.Get(ctx, key)
}

func (s cancellingStore) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	if strings.HasPrefix(prefix, s.prefix) {
		return nil, s.hook(prefix)
	}
	return s.Store.List(ctx, prefix)
}

// A signal during the drills stops them: the drill it cut short is
// cancelled, not failed, the drills after it never run, and neither is
// named in drill-failed or in "N of M could not be restored" (they were
// never shown bad); the error says which were not drilled.
func TestDrillStopsWhenCancelled(t *testing.T) {
	store := tempFolder(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []string
	j := drillJob("postgres://s:p@scratch.example.com/s", 3, 18)
	j.o.Store = cancellingStore{Store: store, hook: func(key string) error {
		got = append(got, key)
		switch len(got) {
		case 1:
			return errors.New("503 Slow Down") // a real failure
		case 2:
			cancel() // the signal, during the second drill
			return context.Canceled
		}
		return errors.New("drilled on a cancelled context")
	}}
	j.o.Drill.ran, j.o.Drill.offered = true, 3
	rs := drillResults()
	err := j.drillChosen(ctx, rs, []int{0, 1, 2})
	if len(got) != 2 {
		t.Errorf("manifests read: %v, want the first two drills only", got)
	}
	d := j.o.Drill
	if !slices.Equal(d.failed, []string{"a"}) || !slices.Equal(d.drilled, []string{"a"}) || !slices.Equal(d.cancelled, []string{"b"}) {
		t.Errorf("drilled %v, failed %v, cancelled %v", d.drilled, d.failed, d.cancelled)
	}
	if err == nil || !strings.Contains(err.Error(), "1 of 1 backups could not be restored: the backup a/") || strings.Contains(err.Error(), "of b") ||
		!strings.Contains(err.Error(), "restore drill cancelled: 1 of 3 chosen backups were drilled; not drilled: b (db2.example.com/b), c (db1.example.com/c)") {
		t.Errorf("error: %v", err)
	}
	if rs[0].Status != fleet.Failed || rs[1].Status != fleet.Cancelled || rs[2].Status != fleet.Succeeded || rs[2].Detail.(*Detail).Drill != nil {
		t.Errorf("statuses %s %s %s, c's drill %+v", rs[0].Status, rs[1].Status, rs[2].Status, rs[2].Detail.(*Detail).Drill)
	}
	if out := j.Outputs(rs); out["drill-failed"] != "a" || out["drilled"] != "a" {
		t.Errorf("outputs %v", out)
	}
	sec := j.Sections(rs)[1]
	if !strings.Contains(sec.Note, "1 failed: ") || !strings.Contains(sec.Note, "1 cut short when the run was cancelled") ||
		len(sec.Rows) != 2 || !strings.HasPrefix(sec.Rows[1][5], "⏹ cancelled: ") {
		t.Errorf("drill section: %+v", sec)
	}
}

// A signal after the drills, before or while retention runs: the prune it
// cut short and those it kept from starting (also one that waited for its
// turn) say "cancelled", not "pruning failed", and the error (Finish's, so
// the run fails) names every tenant whose retention did not run; their
// statuses alone would let a run stopped before retention end clean.
func TestPruneAfterDrillCancelled(t *testing.T) {
	store := tempFolder(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs := drillResults()
	rs[3].Status, rs[3].Detail.(*Detail).complete = fleet.Succeeded, true
	for _, r := range rs {
		deferred(r.Detail.(*Detail), ago(0))
	}
	j := drillJob("postgres://s:p@scratch.example.com/s", 2, 18)
	j.o.Store = cancellingStore{Store: store, prefix: archive.Folder("a", "a") + "/", hook: func(string) error {
		cancel() // the signal, during a's prune
		return context.Canceled
	}}
	j.o.RetentionDays, j.o.KeepLast, j.o.Now = 7, 1, func() time.Time { return now }
	j.o.Drill.ran, j.o.Drill.offered, j.o.Drill.concurrency = true, 4, 1
	rs[1].Detail.(*Detail).Drill, rs[1].Status = &Drill{Error: "the dump does not match its manifest"}, fleet.Failed
	err := j.pruneAfterDrill(ctx, rs)
	if err == nil || !strings.Contains(err.Error(), "retention did not run, or did not finish, for 3 tenants because the run was cancelled") ||
		!strings.Contains(err.Error(), "a (db1.example.com/a), c (db1.example.com/c), d (db1.example.com/d)") {
		t.Errorf("error: %v", err)
	}
	for i, want := range []string{"not pruned: the run was cancelled while pruning", notPrunedDrillFail, notPrunedCancelled, notPrunedCancelled} {
		if d := rs[i].Detail.(*Detail); !strings.HasPrefix(d.RetentionNote, want) || d.Cells()[3] != "not pruned" {
			t.Errorf("%s: note %q, cell %q", rs[i].Tenant.ID, d.RetentionNote, d.Cells()[3])
		}
	}
	if rs[0].Status != fleet.Cancelled || !errors.Is(rs[0].Err, context.Canceled) || rs[2].Status != fleet.Succeeded {
		t.Errorf("statuses %s (%v), %s", rs[0].Status, rs[0].Err, rs[2].Status)
	}
}

// A prune that fails part-way says what it removed before it stopped: the
// cell counts the backups gone ("partly"), the note says why it stopped,
// rather than "not pruned" for a folder that lost backups.
func TestPruneAfterDrillPartly(t *testing.T) {
	ctx := context.Background()
	store := tempFolder(t)
	rs := drillResults()[:1]
	f := archive.Folder("a", "a")
	for _, s := range []string{ago(0), ago(10 * day), ago(20 * day)} {
		for _, k := range []string{f + "/" + s + ".dump.zst", f + "/" + s + ".manifest.json"} {
			if _, err := store.Put(ctx, k, strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := rs[0].Detail.(*Detail)
	deferred(d, ago(0))
	j := drillJob("postgres://s:p@scratch.example.com/s", 1, 18)
	deletes := 0
	j.o.Store = cancellingStore{Store: store, prefix: "none/", del: func(string) error {
		if deletes++; deletes == 3 { // the first backup's two keys went
			return errors.New("403 AccessDenied")
		}
		return nil
	}}
	j.o.RetentionDays, j.o.KeepLast, j.o.Now = 7, 1, func() time.Time { return now }
	j.o.Drill.ran, j.o.Drill.offered = true, 1
	if err := j.pruneAfterDrill(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if len(d.Pruned) != 1 || d.Cells()[3] != "1 (partly: stopped)" || rs[0].Status != fleet.Failed ||
		d.RetentionNote != "partly pruned: pruning failed after removing 1 backup: 403 AccessDenied" {
		t.Errorf("pruned %v, cell %q, note %q, status %s", d.Pruned, d.Cells()[3], d.RetentionNote, rs[0].Status)
	}
	if rows := j.Sections(rs)[0].Rows; len(rows) != 2 || rows[0][1] != d.RetentionNote || rows[1][1] != d.Pruned[0] {
		t.Errorf("retention rows: %v", rows)
	}
}

// tempFolder is an empty folder store.
func tempFolder(t *testing.T) *dir.Store {
	t.Helper()
	store, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return store
}
