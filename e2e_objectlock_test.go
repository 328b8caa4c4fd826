package main

// End-to-end tests of S3 Object Lock (backup's object-lock-mode and
// object-lock-days) and of restoring what a delete hid
// (restore-include-deleted), through the real binary against MinIO
// buckets created with Object Lock.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/s3"
)

// lockedDest is a fresh prefix of a new bucket created with Object Lock
// on the shared MinIO server.
func lockedDest(t *testing.T) dest {
	t.Helper()
	srv := minioServer(t)
	b := make([]byte, 4)
	rand.Read(b)
	bucket := "locked-" + hex.EncodeToString(b)
	if err := srv.CreateBucket(context.Background(), bucket, true); err != nil {
		t.Fatal(err)
	}
	return s3DestIn(t, srv, bucket)
}

// lockInputs ask for governance locks of a day: test clean-up could lift
// them, and MinIO's data folder goes with the server anyway.
var lockInputs = inputs{"object-lock-mode": "governance", "object-lock-days": "1"}

// bucketOf is the bucket of an s3 dest.
func bucketOf(d dest) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(d.in["destination"], "s3://"), "/")
	return b
}

// head is the object's current version as the server describes it.
func head(t *testing.T, d dest, key string) *awss3.HeadObjectOutput {
	t.Helper()
	out, err := d.srv.Client().HeadObject(context.Background(), &awss3.HeadObjectInput{Bucket: aws.String(bucketOf(d)), Key: aws.String(d.prefix + "/" + key)})
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	return out
}

// lockedRecords are the locked field of each tenant's backup record.
func lockedRecords(t *testing.T, r run) map[string][]struct {
	Backup string    `json:"backup"`
	Until  time.Time `json:"locked_until"`
} {
	t.Helper()
	var rep struct {
		Tenants []struct {
			ID     string `json:"id"`
			Locked []struct {
				Backup string    `json:"backup"`
				Until  time.Time `json:"locked_until"`
			} `json:"locked"`
		} `json:"tenants"`
	}
	if err := json.Unmarshal([]byte(r.files["pgfleet-backup-report.json"]), &rep); err != nil {
		t.Fatal(err)
	}
	out := map[string][]struct {
		Backup string    `json:"backup"`
		Until  time.Time `json:"locked_until"`
	}{}
	for _, tn := range rep.Tenants {
		out[tn.ID] = tn.Locked
	}
	return out
}

// A backup into a bucket with Object Lock: every new dump and manifest is
// locked (mode and retain-until date on the object), the job's own
// credentials cannot delete a locked version, and retention keeps the
// old backups whose lock has not passed (reported as locked until then)
// while it prunes the one whose lock has, without failing. retention-days
// shorter than the lock is warned about.
func TestObjectLockBackup(t *testing.T) {
	dbs := newTenants(t, "bklock", 2)
	for i, db := range dbs {
		seed(t, db.URL, i)
	}
	d := lockedDest(t)
	ctx := context.Background()

	// Old backups of the first tenant: two still locked (as an earlier
	// run with a longer lock leaves them), one never locked.
	locker, err := s3.New(ctx, s3.Options{Bucket: bucketOf(d), Prefix: d.prefix, Endpoint: d.srv.Endpoint, ForcePathStyle: true,
		AccessKeyID: d.srv.AccessKey, SecretAccessKey: d.srv.SecretKey, Lock: storage.Lock{Mode: storage.LockGovernance, Days: 1}})
	if err != nil {
		t.Fatal(err)
	}
	folder := archive.Folder(dbs[0].Name, dbs[0].Name)
	now := time.Now().UTC()
	old := func(s storage.Store, age time.Duration) string {
		stamp := archive.Stamp(now.Add(-age))
		for _, k := range []string{folder + "/" + stamp + ".dump.zst", folder + "/" + stamp + ".manifest.json"} {
			if _, err := s.Put(ctx, k, strings.NewReader("old")); err != nil {
				t.Fatal(err)
			}
		}
		return stamp
	}
	const day = 24 * time.Hour
	locked10, locked20 := old(locker, 10*day), old(locker, 20*day)
	unlocked30 := old(d.store, 30*day)

	r, rep := runBackup(t, d, tenantList(dbs), with(lockInputs, inputs{"retention-days": "1", "keep-last": "1"}))
	mustCode(t, r, 0)
	if rep.Counts["succeeded"] != 2 {
		t.Fatalf("counts %v\n%s", rep.Counts, tail(r.stdout, 3000))
	}
	if strings.Contains(r.stdout+r.stderr, "is shorter than object-lock-days") {
		t.Errorf("warned with retention-days equal to the lock:\n%s", tail(r.stdout, 2000))
	}
	for _, rec := range rep.Tenants {
		for _, key := range []string{rec.Object, rec.Manifest} {
			h := head(t, d, key)
			until := aws.ToTime(h.ObjectLockRetainUntilDate)
			if h.ObjectLockMode != types.ObjectLockModeGovernance || until.Before(now.Add(day-time.Minute)) || until.After(time.Now().Add(day+time.Minute)) {
				t.Errorf("%s: lock %q until %s, want GOVERNANCE for a day", key, h.ObjectLockMode, until)
			}
			// The job's credentials (MinIO's root user here) cannot delete
			// the locked version.
			_, err := d.srv.Client().DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucketOf(d)), Key: aws.String(d.prefix + "/" + key), VersionId: h.VersionId})
			if !s3.IsLockRefusal(err) {
				t.Errorf("%s: deleting the locked version: %v, want it refused", key, err)
			}
		}
	}

	rec := rep.Tenants[rep.tenant(t, dbs[0].Name)]
	if !slices.Equal(rec.Pruned, []string{unlocked30}) {
		t.Errorf("pruned %v, want only the unlocked %s", rec.Pruned, unlocked30)
	}
	locked := lockedRecords(t, r)[dbs[0].Name]
	if len(locked) != 2 || locked[0].Backup != locked10 || locked[1].Backup != locked20 || !locked[0].Until.After(now) {
		t.Errorf("locked %+v, want %s and %s", locked, locked10, locked20)
	}
	keys := objects(t, d, folder+"/")
	for _, s := range []string{locked10, locked20} {
		if !slices.Contains(keys, folder+"/"+s+".dump.zst") || !slices.Contains(keys, folder+"/"+s+".manifest.json") {
			t.Errorf("the locked backup %s was not kept: %v", s, keys)
		}
	}
	if slices.Contains(keys, folder+"/"+unlocked30+".dump.zst") {
		t.Errorf("the unlocked old backup is still listed")
	}
	for _, want := range []string{"kept while locked", locked10 + " (locked until ", "locked (governance) for 1 day:"} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("the summary lacks %q:\n%s", want, tail(r.summary, 3000))
		}
	}
	assertNoLeak(t, r, append(passwords(dbs), d.secrets...)...)
	t.Logf("tenant row: %s", rowOf(r.summary, "kept: locked"))

	// A lock longer than retention-days is warned about, once.
	r, _ = runBackup(t, d, tenantList(dbs[:1]), with(lockInputs, inputs{"object-lock-days": "3", "retention-days": "2"}))
	mustCode(t, r, 0)
	const warning = "retention-days (2) is shorter than object-lock-days (3)"
	if n := strings.Count(r.stdout+r.stderr, warning); n != 1 {
		t.Errorf("the warning appears %d times, want once:\n%s", n, tail(r.stdout, 3000))
	}
}

// A lock that cannot be kept is refused before any tenant is touched
// (exit 2, naming the input): a bucket without Object Lock, a folder, one
// of the two inputs alone; and restore-include-deleted with a folder.
func TestObjectLockRefused(t *testing.T) {
	dbs := newTenants(t, "bklockbad", 1)
	unlocked := s3Dest(t, minioServer(t))
	r, _ := runBackup(t, unlocked, tenantList(dbs), lockInputs)
	mustCode(t, r, 2)
	for _, want := range []string{"input object-lock-mode", "object lock is not enabled on bucket " + unlocked.srv.Bucket} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if objs := objects(t, unlocked, ""); len(objs) > 0 {
		t.Errorf("objects written: %v", objs)
	}
	t.Logf("a bucket without Object Lock: %s", strings.TrimSpace(r.stderr))
	assertNoLeak(t, r, append(passwords(dbs), unlocked.secrets...)...)

	folder := fileDest(t)
	for _, c := range []struct {
		in   inputs
		want []string
	}{
		{lockInputs, []string{"input object-lock-mode", "a local folder cannot lock"}},
		{inputs{"object-lock-mode": "governance"}, []string{"input object-lock-days", "required with object-lock-mode"}},
		{inputs{"object-lock-days": "7"}, []string{"input object-lock-mode", "required with object-lock-days"}},
		{inputs{"object-lock-mode": "strict", "object-lock-days": "0"}, []string{"input object-lock-mode", "input object-lock-days"}},
	} {
		r, _ := runBackup(t, folder, tenantList(dbs), c.in)
		mustCode(t, r, 2)
		for _, want := range c.want {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v: stderr lacks %q:\n%s", c.in, want, r.stderr)
			}
		}
	}
	if objs := objects(t, folder, ""); len(objs) > 0 {
		t.Errorf("objects written: %v", objs)
	}
	target := freshDB(t, dbName("rsdel"))
	r, _ = runRestore(t, folder, inputs{"database-urls": strings.Join(tenantList(dbs), "\n"), "restore-project": dbs[0].Name,
		"restore-target-url": target.URL, "restore-include-deleted": "true"})
	mustCode(t, r, 2)
	if !strings.Contains(r.stderr, "input restore-include-deleted") || !strings.Contains(r.stderr, "keeps no deleted versions") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// Someone deletes every object of a tenant with the job's credentials
// (plain deletes: delete markers over locked versions). A restore then
// finds no backup and points to restore-include-deleted; with it, the
// newest locked backup is restored and its rows equal the source's at
// that backup, though its dump was written over before the delete (the
// locked version is read, not the overwrite).
func TestObjectLockRestoreDeleted(t *testing.T) {
	dbs := newTenants(t, "rslock", 1)
	db := dbs[0]
	seed(t, db.URL, 4)
	d := lockedDest(t)
	r, _ := runBackup(t, d, tenantList(dbs), lockInputs)
	mustCode(t, r, 0)
	execSQL(t, db.URL, "INSERT INTO customers (name) SELECT 'later ' || g FROM generate_series(1, 25) g")
	want := digests(t, db.URL)
	r, rep := runBackup(t, d, tenantList(dbs), lockInputs)
	mustCode(t, r, 0)
	newest := rep.Tenants[0].Object
	execSQL(t, db.URL, "DELETE FROM orders; DELETE FROM customers") // the source moves on: the restore must come from the backup

	folder := archive.Folder(db.Name, db.Name)
	keys := objects(t, d, folder+"/")
	if len(keys) != 4 {
		t.Fatalf("the folder holds %v, want two backups", keys)
	}
	// Whoever holds the job's credentials first writes over the newest
	// dump (a new, unlocked version above the locked one), then deletes
	// everything.
	if _, err := d.store.Put(context.Background(), folder+"/"+path.Base(newest), strings.NewReader("overwritten")); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := d.store.Delete(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	if left := objects(t, d, folder+"/"); len(left) > 0 {
		t.Fatalf("still listed after the deletes: %v", left)
	}

	urls := strings.Join(tenantList(dbs), "\n")
	target := freshDB(t, dbName("rsdel"))
	r, _ = runRestore(t, d, inputs{"database-urls": urls, "restore-project": db.Name, "restore-target-url": target.URL})
	mustCode(t, r, 2)
	for _, want := range []string{"no good backup", "2 backups are hidden by a delete", "restore-include-deleted: true"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("restore without the input: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if n := userTables(t, target.URL); n != 0 {
		t.Fatalf("a refused restore left %d tables", n)
	}
	t.Logf("without restore-include-deleted: %s", strings.TrimSpace(r.stderr))

	r, rrep := runRestore(t, d, inputs{"database-urls": urls, "restore-project": db.Name, "restore-target-url": target.URL, "restore-include-deleted": "true"})
	mustCode(t, r, 0)
	got := rrep.Tenants[0]
	if path.Base(got.Object) != path.Base(newest) || !got.Verified || got.Differing != 0 || got.RestoredRows != got.ExpectedRows {
		t.Errorf("restore record %+v, want %s verified", got, newest)
	}
	if restored := digests(t, target.URL); !maps.Equal(restored, want) {
		t.Errorf("restored tables differ from the source at the backup:\n%v\nwant\n%v", restored, want)
	}
	assertNoLeak(t, r, append(passwords(dbs), append(d.secrets, target.Password)...)...)
}

// rowOf is the first summary line that names name, for the log.
func rowOf(summary, name string) string {
	for _, l := range strings.Split(summary, "\n") {
		if strings.Contains(l, name) {
			return l
		}
	}
	return ""
}
