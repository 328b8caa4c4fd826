package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
	"github.com/pgfleet/pgfleet/internal/testenv/minio"
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

// countingLocker is a folder that answers CheckLock with check and
// Retention with retention (or fails it with retErr), counting both.
type countingLocker struct {
	*dir.Store
	check      error
	retention  map[string]time.Time
	retErr     error
	mu         sync.Mutex
	checks     int
	retentions int
}

func (c *countingLocker) CheckLock(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks++
	return c.check
}

func (c *countingLocker) Retention(_ context.Context, key string) (storage.Retention, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retentions++
	if c.retErr != nil {
		return storage.Retention{}, c.retErr
	}
	if u, ok := c.retention[key]; ok {
		return storage.Retention{Mode: storage.LockCompliance, Until: u}, nil
	}
	return storage.Retention{}, nil
}

// lockFolders writes, into each of n folders, the current backup and two
// past retention, and returns the folders.
func lockFolders(t *testing.T, d *dir.Store, n int) []string {
	t.Helper()
	var folders []string
	for i := range n {
		f := fmt.Sprintf("t%d", i)
		for _, s := range []string{ago(0), ago(10 * day), ago(20 * day)} {
			for _, k := range []string{f + "/" + s + ".dump.zst", f + "/" + s + ".manifest.json"} {
				if _, err := d.Put(context.Background(), k, strings.NewReader("x")); err != nil {
					t.Fatal(err)
				}
			}
		}
		folders = append(folders, f)
	}
	return folders
}

// pruneAll prunes every folder at once, as the fleet's workers do, and
// returns each one's detail and error.
func pruneAll(j *Job, folders []string) ([]*Detail, []error) {
	dets, errs := make([]*Detail, len(folders)), make([]error, len(folders))
	var wg sync.WaitGroup
	for i, f := range folders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dets[i] = &Detail{}
			errs[i] = j.prune(context.Background(), f, ago(0), dets[i])
		}()
	}
	wg.Wait()
	return dets, errs
}

// The requests a run's retention sends to ask for locks: in a bucket
// without Object Lock, one check for the whole run and no per-object
// read; when the check is refused (credentials without
// s3:GetBucketObjectLockConfiguration), one check, then every object of
// every backup to prune is asked, and a locked one kept; in a run that
// locks, no check (Prepare made it).
func TestPruneAsksForLocksOncePerRun(t *testing.T) {
	const tenants = 4
	for _, c := range []struct {
		name               string
		check              error
		lock               storage.Lock
		checks, retentions int
		pruned             int // per tenant
	}{
		{"bucket without Object Lock", fmt.Errorf("check: %w", storage.ErrNoLock), storage.Lock{}, 1, 0, 2},
		{"check refused", fmt.Errorf("AccessDenied: %w", storage.ErrDenied), storage.Lock{}, 1, tenants * 2 * 2, 1},
		// A failure to answer is no answer: the next backup asks again.
		{"check failed", errors.New("503 SlowDown"), storage.Lock{}, tenants * 2, tenants * 2 * 2, 1},
		{"bucket with Object Lock", nil, storage.Lock{}, 1, tenants * 2 * 2, 1},
		{"a run that locks", nil, storage.Lock{Mode: storage.LockCompliance, Days: 3}, 0, tenants * 2 * 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := dir.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			folders := lockFolders(t, d, tenants)
			s := &countingLocker{Store: d, check: c.check, retention: map[string]time.Time{}}
			for _, f := range folders {
				s.retention[f+"/"+ago(10*day)+".dump.zst"] = now.Add(day)
			}
			j := NewJob(Options{Store: s, RetentionDays: 7, KeepLast: 1, Lock: c.lock, Now: func() time.Time { return now }})
			dets, errs := pruneAll(j, folders)
			for i, f := range folders {
				if errs[i] != nil {
					t.Fatalf("%s: %v", f, errs[i])
				}
				if len(dets[i].Pruned) != c.pruned || len(dets[i].Pruned)+len(dets[i].Locked) != 2 {
					t.Errorf("%s: pruned %v, kept %v, want %d pruned", f, dets[i].Pruned, dets[i].Locked, c.pruned)
				}
			}
			if s.checks != c.checks || s.retentions != c.retentions {
				t.Errorf("%d tenants asked %d Object Lock checks and %d retentions, want %d and %d", tenants, s.checks, s.retentions, c.checks, c.retentions)
			}
		})
	}
}

// A lock that cannot be read fails the tenant's prune and deletes nothing
// of that backup: it may be locked, and deleting it would hide it behind a
// delete marker and report it pruned.
func TestPruneFailsOnUnreadableLock(t *testing.T) {
	d, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	folders := lockFolders(t, d, 1)
	s := &countingLocker{Store: d, retErr: errors.New("retention t0/x: AccessDenied (the credentials need s3:GetObjectRetention)")}
	j := NewJob(Options{Store: s, RetentionDays: 7, KeepLast: 1, Now: func() time.Time { return now }})
	det := &Detail{}
	err = j.prune(context.Background(), folders[0], ago(0), det)
	if err == nil || !strings.Contains(err.Error(), "s3:GetObjectRetention") {
		t.Fatalf("prune = %v, want the retention error", err)
	}
	if len(det.Pruned) != 0 {
		t.Errorf("reported pruned %v", det.Pruned)
	}
	if keys, _ := d.List(context.Background(), folders[0]+"/"); len(keys) != 6 {
		t.Errorf("the folder holds %d objects, want all 6", len(keys))
	}
}

// Credentials that can read neither the bucket's Object Lock nor any
// object's (a policy from before Object Lock), in a run that locks
// nothing, prune as pgfleet always did, with one warning for the run: on a
// locked bucket the delete only hides the version, where failing would
// stop every such user's retention.
func TestPruneWithoutLockPermissions(t *testing.T) {
	d, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	folders := lockFolders(t, d, 3)
	s := &countingLocker{Store: d, check: fmt.Errorf("AccessDenied: %w", storage.ErrDenied), retErr: fmt.Errorf("AccessDenied (the credentials need s3:GetObjectRetention): %w", storage.ErrDenied)}
	var warned []string
	j := NewJob(Options{Store: s, RetentionDays: 7, KeepLast: 1, Now: func() time.Time { return now },
		Warn: func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }})
	dets, errs := pruneAll(j, folders)
	for i, f := range folders {
		if errs[i] != nil || len(dets[i].Pruned) != 2 {
			t.Errorf("%s: pruned %v, error %v: want both old backups pruned", f, dets[i].Pruned, errs[i])
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "cannot tell whether backups are locked") || !strings.Contains(warned[0], "s3:GetObjectRetention") {
		t.Errorf("warnings %q, want one naming the missing permission", warned)
	}

	// Failures to answer (an outage, not a refusal) are no such case: the
	// prune fails and deletes nothing.
	d2, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	folders = lockFolders(t, d2, 1)
	s = &countingLocker{Store: d2, check: errors.New("503 SlowDown"), retErr: errors.New("503 SlowDown")}
	j = NewJob(Options{Store: s, RetentionDays: 7, KeepLast: 1, Now: func() time.Time { return now }})
	det := &Detail{}
	if err := j.prune(context.Background(), folders[0], ago(0), det); err == nil || len(det.Pruned) != 0 {
		t.Errorf("prune with the store failing to answer = %v, pruned %v: want the error and nothing pruned", err, det.Pruned)
	}
}

// Prepare warns of a retention shorter than the lock through env.Warn, and
// an Env without Warn (a caller that gives none, as prepareDrill allows)
// is no panic: here against a MinIO bucket created with Object Lock.
func TestPrepareLockWarning(t *testing.T) {
	srv := minio.StartForTest(t)
	ctx := context.Background()
	if err := srv.CreateBucket(ctx, "locked-prepare", true); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	given := map[string]string{"destination": "s3://locked-prepare/t", "s3-endpoint": srv.Endpoint, "s3-force-path-style": "true",
		"object-lock-mode": "governance", "object-lock-days": "30", "retention-days": "7"}
	table := input.NewTable([]input.ModeDecl{{Name: "backup", Inputs: Mode{}.Inputs(), Outputs: Mode{}.Outputs()}})
	for _, warn := range []bool{true, false} {
		var warned []string
		env := mode.Env{Inputs: input.NewValues(table, func(name string) string { return given[name] }), Workspace: t.TempDir(),
			Getenv: func(string) string { return "" }, Secret: func(string) {}}
		if warn {
			env.Warn = func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }
		}
		job, err := Mode{}.Prepare(ctx, env)
		if err != nil || job == nil {
			t.Fatalf("Prepare (Warn given: %v): %v", warn, err)
		}
		if warn && (len(warned) != 1 || !strings.Contains(warned[0], "shorter than object-lock-days (30)")) {
			t.Errorf("warnings %q", warned)
		}
	}
}
