package backup

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
)

var now = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// folderOf builds a folder's listing: good backups at the given ages, and
// extra objects.
func folderOf(f string, goodAges []time.Duration, extra ...string) []archive.Backup {
	var objs []storage.Object
	for _, age := range goodAges {
		s := archive.Stamp(now.Add(-age))
		objs = append(objs, storage.Object{Key: f + "/" + s + ".dump.zst"}, storage.Object{Key: f + "/" + s + ".manifest.json"})
	}
	for _, k := range extra {
		objs = append(objs, storage.Object{Key: f + "/" + k})
	}
	return archive.Scan(f, objs)
}

func stamps(bs []archive.Backup) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Stamp)
	}
	return out
}

func ago(d time.Duration) string { return archive.Stamp(now.Add(-d)) }

const day = 24 * time.Hour

func TestPlanKeepsRecentAndKeepLast(t *testing.T) {
	f := "acme-p1"
	bs := folderOf(f, []time.Duration{0, day, 2 * day, 5 * day, 9 * day, 10 * day, 30 * day})
	pr := Plan(now, Policy{Days: 7, KeepLast: 3}, f, bs, nil, ago(0))
	if got, want := stamps(pr.Backups), []string{ago(9 * day), ago(10 * day), ago(30 * day)}; !slices.Equal(got, want) {
		t.Errorf("pruned %v, want %v", got, want)
	}
	// Every backup old: keep-last keeps the newest three whatever their age.
	bs = folderOf(f, []time.Duration{0, 20 * day, 30 * day, 40 * day, 50 * day})
	pr = Plan(now, Policy{Days: 7, KeepLast: 3}, f, bs, nil, ago(0))
	if got, want := stamps(pr.Backups), []string{ago(40 * day), ago(50 * day)}; !slices.Equal(got, want) {
		t.Errorf("pruned %v, want %v", got, want)
	}
	// Fewer good backups than keep-last: nothing goes.
	bs = folderOf(f, []time.Duration{0, 100 * day})
	if pr := Plan(now, Policy{Days: 1, KeepLast: 3}, f, bs, nil, ago(0)); len(pr.Backups) != 0 {
		t.Errorf("pruned %v with 2 good backups and keep-last 3", stamps(pr.Backups))
	}
	// keep-last 0 still keeps the new one.
	bs = folderOf(f, []time.Duration{0, 100 * day})
	if pr := Plan(now, Policy{Days: 1, KeepLast: 0}, f, bs, nil, ago(0)); !slices.Equal(stamps(pr.Backups), []string{ago(100 * day)}) {
		t.Errorf("keep-last 0: pruned %v", stamps(pr.Backups))
	}
}

// Incomplete backups older than a day are debris; younger ones may belong
// to a run still going; dumps without manifests never count as good, so
// they cannot make keep-last prune a good one.
func TestPlanDebris(t *testing.T) {
	f := "acme-p1"
	bs := folderOf(f, []time.Duration{0, 10 * day, 20 * day},
		ago(2*day)+".dump.zst",       // debris
		ago(2*time.Hour)+".dump.zst", // maybe a run in progress
		ago(3*day)+".manifest.json",  // a manifest whose dump is gone
		ago(1*day)+".dump.zst",       // exactly a day: not older
		"notes.txt", ago(5*day)+".dump.zst.bak",
	)
	pr := Plan(now, Policy{Days: 7, KeepLast: 3}, f, bs, nil, ago(0))
	if len(pr.Backups) != 0 {
		t.Errorf("pruned %v: three good backups and keep-last 3 (the incomplete ones do not count)", stamps(pr.Backups))
	}
	want := []string{f + "/" + ago(3*day) + ".manifest.json", f + "/" + ago(2*day) + ".dump.zst"}
	if !slices.Equal(pr.Debris, want) {
		t.Errorf("debris %v, want %v", pr.Debris, want)
	}
	for _, k := range pr.Debris {
		if strings.Contains(k, "notes") || strings.HasSuffix(k, ".bak") {
			t.Errorf("foreign object %s in the plan", k)
		}
	}
}

func TestPlanUploads(t *testing.T) {
	f := "acme-p1"
	ups := []storage.Upload{
		{Key: f + "/" + ago(2*day) + ".dump.zst", ID: "old"},
		{Key: f + "/" + ago(time.Hour) + ".dump.zst", ID: "recent"},
		{Key: f + "/" + ago(0) + ".dump.zst", ID: "current"},
		{Key: f + "/something-else", ID: "foreign"},
		{Key: f + "0/" + ago(2*day) + ".dump.zst", ID: "other-folder"},
	}
	pr := Plan(now, Policy{Days: 7, KeepLast: 3}, f, folderOf(f, []time.Duration{0}), ups, ago(0))
	if len(pr.Uploads) != 1 || pr.Uploads[0].ID != "old" {
		t.Errorf("uploads to abort: %+v, want only the old one", pr.Uploads)
	}
}

func TestParseDumpArgs(t *testing.T) {
	for _, ok := range []string{
		"", "--no-owner --no-privileges", "--no-comments --quote-all-identifiers -v",
		"--lock-wait-timeout 10s --no-owner", "--lock-wait-timeout=10s", "-E UTF8", "-EUTF8 -O -x", "--clean --if-exists",
		"--exclude-extension x", "--extension=postgis", "--rows-per-insert 10",
	} {
		if _, err := ParseDumpArgs(ok); err != nil {
			t.Errorf("ParseDumpArgs(%q): %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"-t users":                  "leaves tables",
		"--table=users":             "leaves tables",
		"--tab=users":               "leaves tables", // an abbreviation pg_dump accepts
		"-Ox -s":                    "leaves tables",
		"--exclude-table-data=logs": "leaves tables",
		"-f /tmp/x":                 "streams",
		"-Fd":                       "streams",
		"--format=directory":        "streams",
		"-Z9":                       "streams",
		"--snapshot=x":              "snapshot",
		"-h evil":                   "connection",
		"--dbname=postgres://x":     "connection",
		"mydb":                      "connection",
		"--create":                  "restore-target-url",
	} {
		_, err := ParseDumpArgs(bad)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseDumpArgs(%q) = %v, want a refusal saying %q", bad, err, why)
		}
	}
}

// A listing that does not show the new backup yet (an eventually
// consistent store) skips retention, and the summary says "not pruned",
// not a count of none.
func TestPruneSkippedWhenNewBackupNotListed(t *testing.T) {
	d, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j := NewJob(Options{Store: d, RetentionDays: 7, KeepLast: 1})
	det := &Detail{complete: true}
	if err := j.prune(context.Background(), "acme-p1", archive.Stamp(time.Now()), det); err != nil {
		t.Fatal(err)
	}
	if cells := det.Cells(); cells[3] != "not pruned" || !strings.Contains(det.RetentionNote, "not listed yet") {
		t.Errorf("cells %q, note %q: want not pruned, and why", cells, det.RetentionNote)
	}
}
