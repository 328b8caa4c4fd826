package backup

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
)

// lockingDir is a folder that claims the locks in until, as a bucket with
// Object Lock would report them.
type lockingDir struct {
	*dir.Store
	until map[string]time.Time
}

func (l lockingDir) CheckLock(context.Context) error { return nil }

func (l lockingDir) Retention(_ context.Context, key string) (storage.Retention, error) {
	if u, ok := l.until[key]; ok {
		return storage.Retention{Mode: storage.LockGovernance, Until: u}, nil
	}
	return storage.Retention{}, nil
}

// Retention keeps a backup past retention-days while any of its objects is
// locked, reports it, prunes the others, and prunes it too once the clock
// passes its lock.
func TestPruneKeepsLockedBackups(t *testing.T) {
	ctx := context.Background()
	d, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const f = "acme-p1"
	current := ago(0)
	stamps := []string{current, ago(10 * day), ago(20 * day), ago(30 * day)}
	for _, s := range stamps {
		for _, k := range []string{f + "/" + s + ".dump.zst", f + "/" + s + ".manifest.json"} {
			if _, err := d.Put(ctx, k, strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	lockEnd := now.Add(day)
	store := lockingDir{Store: d, until: map[string]time.Time{
		f + "/" + stamps[1] + ".manifest.json": lockEnd,               // the manifest's lock still holds
		f + "/" + stamps[1] + ".dump.zst":      now.Add(-time.Second), // the dump's has just passed
		f + "/" + stamps[2] + ".dump.zst":      now.Add(-time.Hour),   // passed
	}}
	clock := now
	j := NewJob(Options{Store: store, RetentionDays: 7, KeepLast: 1, Lock: storage.Lock{Mode: storage.LockGovernance, Days: 30}, Now: func() time.Time { return clock }})
	det := &Detail{complete: true}
	if err := j.prune(ctx, f, current, det); err != nil {
		t.Fatal(err)
	}
	if want := []string{stamps[2], stamps[3]}; !slices.Equal(det.Pruned, want) {
		t.Errorf("pruned %v, want %v", det.Pruned, want)
	}
	if len(det.Locked) != 1 || det.Locked[0].Stamp != stamps[1] || !det.Locked[0].Until.Equal(lockEnd) {
		t.Errorf("locked %+v, want %s until %s", det.Locked, stamps[1], lockEnd)
	}
	objs, err := d.List(ctx, f+"/")
	if err != nil || len(objs) != 4 {
		t.Errorf("the folder holds %v, %v: want the current and the locked backup", objs, err)
	}
	if cell := det.Cells()[3]; cell != "2, 1 kept: locked until "+lockEnd.Format(time.RFC3339) {
		t.Errorf("pruned cell %q", cell)
	}
	sec := j.Sections([]fleet.Result{{Detail: det}})[0]
	if row := strings.Join(sec.Rows[0], " | "); !strings.Contains(row, stamps[1]+" (locked until "+lockEnd.Format(time.RFC3339)+")") {
		t.Errorf("retention row %q", row)
	}
	if !strings.Contains(sec.Note, "locked (governance) for 30 days") {
		t.Errorf("note %q", sec.Note)
	}

	// A day and a second later the lock has passed: the backup goes.
	clock = lockEnd.Add(time.Second)
	det = &Detail{complete: true}
	if err := j.prune(ctx, f, current, det); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(det.Pruned, []string{stamps[1]}) || len(det.Locked) != 0 {
		t.Errorf("after the lock: pruned %v, locked %v", det.Pruned, det.Locked)
	}
}

func TestLockWarning(t *testing.T) {
	for _, c := range []struct {
		days, lock int
		warn       bool
	}{{7, 30, true}, {30, 30, false}, {40, 30, false}, {7, 0, false}} {
		o := Options{RetentionDays: c.days}
		if c.lock > 0 {
			o.Lock = storage.Lock{Mode: storage.LockCompliance, Days: c.lock}
		}
		if got := lockWarning(o); (got != "") != c.warn {
			t.Errorf("retention %d, lock %d: warning %q", c.days, c.lock, got)
		}
	}
}

var _ storage.Locker = lockingDir{}
