package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/storagetest"
	"github.com/pgfleet/pgfleet/internal/testenv/minio"
)

// lockedBucket creates a bucket with Object Lock on srv, for one test.
func lockedBucket(t *testing.T, srv *minio.Server) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "locked-" + hex.EncodeToString(b)
	if err := srv.CreateBucket(context.Background(), name, true); err != nil {
		t.Fatal(err)
	}
	return name
}

// headerLog keeps the headers of every write request a store sends.
type headerLog struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []loggedRequest
}

type loggedRequest struct {
	kind   string // "put", "create", "part", "complete"
	header http.Header
}

func (l *headerLog) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	kind := ""
	switch {
	case req.Method == http.MethodPut && q.Has("partNumber"):
		kind = "part"
	case req.Method == http.MethodPut && !q.Has("retention"):
		kind = "put"
	case req.Method == http.MethodPost && q.Has("uploads"):
		kind = "create"
	case req.Method == http.MethodPost && q.Has("uploadId"):
		kind = "complete"
	}
	if kind != "" {
		l.mu.Lock()
		l.reqs = append(l.reqs, loggedRequest{kind, req.Header.Clone()})
		l.mu.Unlock()
	}
	return l.base.RoundTrip(req)
}

func (l *headerLog) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ks []string
	for _, r := range l.reqs {
		ks = append(ks, r.kind)
	}
	return ks
}

// lockStore opens a store with lock on bucket, its requests logged in log
// when given.
func lockStore(t *testing.T, srv *minio.Server, bucket string, lock storage.Lock, log *headerLog) *Store {
	t.Helper()
	o := Options{Bucket: bucket, Prefix: testPrefix(t), PartSize: testPartSize, Lock: lock}
	if log != nil {
		o.HTTPClient = &http.Client{Transport: log}
	}
	return newStore(t, srv, nil, o)
}

// Every write into a locked bucket carries the retention (on PutObject and
// on CreateMultipartUpload) and a Content-MD5 (on PutObject and every
// part); the object then reads back locked, a delete of the locked version
// is refused even to the root user, and a plain delete only hides it.
func TestObjectLockPut(t *testing.T) {
	srv := sharedServer(t)
	bucket := lockedBucket(t, srv)
	log := &headerLog{base: http.DefaultTransport}
	s := lockStore(t, srv, bucket, storage.Lock{Mode: storage.LockGovernance, Days: 1}, log)
	ctx := context.Background()
	if err := s.CheckLock(ctx); err != nil {
		t.Fatalf("CheckLock on a bucket with Object Lock: %v", err)
	}
	before := time.Now()
	small := storagetest.Bytes(1, 1000)
	if _, err := s.Put(ctx, "t/small.manifest.json", bytes.NewReader(small)); err != nil {
		t.Fatal(err)
	}
	large := int64(2*testPartSize + 12345)
	if _, err := s.Put(ctx, "t/large.dump.zst", storagetest.NewStream(2, large)); err != nil {
		t.Fatal(err)
	}
	storagetest.AssertSame(t, s, "t/large.dump.zst", 2, large)
	if got, want := log.kinds(), []string{"put", "create", "part", "part", "part", "complete"}; !slices.Equal(got, want) {
		t.Fatalf("requests %v, want %v", got, want)
	}
	for _, r := range log.reqs {
		lockMode, until := r.header.Get("X-Amz-Object-Lock-Mode"), r.header.Get("X-Amz-Object-Lock-Retain-Until-Date")
		md5 := r.header.Get("Content-Md5")
		switch r.kind {
		case "put", "create":
			if lockMode != "GOVERNANCE" || until == "" {
				t.Errorf("%s: lock headers %q %q", r.kind, lockMode, until)
			}
		}
		if (r.kind == "put" || r.kind == "part") && md5 == "" {
			t.Errorf("%s without Content-MD5", r.kind)
		}
		// Nothing else: no SDK checksum trailer an S3-compatible store
		// might refuse.
		if r.header.Get("X-Amz-Trailer") != "" || r.header.Get("X-Amz-Sdk-Checksum-Algorithm") != "" {
			t.Errorf("%s sends an SDK checksum: %v", r.kind, r.header)
		}
	}

	for _, key := range []string{"t/small.manifest.json", "t/large.dump.zst"} {
		head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(s.prefix + key)})
		if err != nil {
			t.Fatal(err)
		}
		until := aws.ToTime(head.ObjectLockRetainUntilDate)
		if head.ObjectLockMode != types.ObjectLockModeGovernance || until.Before(before.Add(24*time.Hour-time.Minute)) || until.After(time.Now().Add(24*time.Hour)) {
			t.Errorf("%s: lock %q until %s, want GOVERNANCE for a day", key, head.ObjectLockMode, until)
		}
		ret, err := s.Retention(ctx, key)
		if err != nil || ret.Mode != storage.LockGovernance || !ret.Until.Equal(until) || !ret.Holds(time.Now()) {
			t.Errorf("%s: Retention = %+v, %v", key, ret, err)
		}
		// The locked version cannot be deleted, not even by root.
		_, err = srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String(s.prefix + key), VersionId: head.VersionId})
		if !IsLockRefusal(err) {
			t.Errorf("%s: deleting the locked version: %v, want it refused", key, err)
		}
		if _, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(s.prefix + key), VersionId: head.VersionId}); err != nil {
			t.Errorf("%s: the locked version is gone: %v", key, err)
		}
	}

	// A plain delete hides the objects behind delete markers; the view
	// including deleted versions still lists and reads them.
	for _, key := range []string{"t/small.manifest.json", "t/large.dump.zst"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("plain delete of a locked object: %v", err)
		}
	}
	if keys := storagetest.Keys(t, s, "t/"); len(keys) != 0 {
		t.Errorf("after the deletes List shows %v", keys)
	}
	ret, err := s.Retention(ctx, "t/small.manifest.json")
	if err != nil || ret != (storage.Retention{}) {
		t.Errorf("Retention of a deleted key = %+v, %v", ret, err)
	}
	v := s.IncludingDeleted()
	if got := storagetest.Keys(t, v, "t/"); !slices.Equal(got, []string{"t/large.dump.zst", "t/small.manifest.json"}) {
		t.Errorf("the view lists %v", got)
	}
	if got := storagetest.MustGet(t, v, "t/small.manifest.json"); !bytes.Equal(got, small) {
		t.Error("the view reads other bytes")
	}
	storagetest.AssertSame(t, v, "t/large.dump.zst", 2, large)
	if _, err := v.Get(ctx, "t/none"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("view Get of a missing key: %v", err)
	}
	if _, err := v.Put(ctx, "t/x", bytes.NewReader(nil)); !errors.Is(err, storage.ErrReadOnly) {
		t.Errorf("view Put: %v", err)
	}
	if err := v.Delete(ctx, "t/small.manifest.json"); !errors.Is(err, storage.ErrReadOnly) {
		t.Errorf("view Delete: %v", err)
	}
}

// A key written twice, neither version locked, then deleted: the view
// reads its newest version that is not the delete marker ("two", not the
// older "one"), and a key never deleted as it is.
func TestIncludingDeletedNewestVersion(t *testing.T) {
	srv := sharedServer(t)
	bucket := lockedBucket(t, srv)
	s := lockStore(t, srv, bucket, storage.Lock{}, nil)
	ctx := context.Background()
	for _, body := range []string{"one", "two"} {
		if _, err := s.Put(ctx, "k/a", bytes.NewReader([]byte(body))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(ctx, "k/b", bytes.NewReader([]byte("b"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k/a"); err != nil {
		t.Fatal(err)
	}
	v := s.IncludingDeleted()
	if got := string(storagetest.MustGet(t, v, "k/a")); got != "two" {
		t.Errorf("the view reads %q, want the newest version, two", got)
	}
	if got := string(storagetest.MustGet(t, v, "k/b")); got != "b" {
		t.Errorf("the view reads %q for a key never deleted", got)
	}
	objs, err := v.List(ctx, "k/")
	if err != nil || len(objs) != 2 || objs[0].Size != 3 {
		t.Errorf("view List = %+v, %v", objs, err)
	}
}

// A bucket created without Object Lock: CheckLock says so (ErrNoLock,
// naming the bucket), and a locked Put is refused rather than stored
// unlocked.
func TestObjectLockBucketWithout(t *testing.T) {
	srv := sharedServer(t)
	s := lockStore(t, srv, srv.Bucket, storage.Lock{Mode: storage.LockCompliance, Days: 3}, nil)
	ctx := context.Background()
	err := s.CheckLock(ctx)
	if !errors.Is(err, storage.ErrNoLock) || !bytes.Contains([]byte(err.Error()), []byte(srv.Bucket)) {
		t.Fatalf("CheckLock = %v, want ErrNoLock naming the bucket", err)
	}
	if _, err := s.Put(ctx, "x/a", bytes.NewReader([]byte("a"))); err == nil {
		t.Error("a locked Put into a bucket without Object Lock succeeded")
	}
	if keys := storagetest.Keys(t, s, ""); len(keys) != 0 {
		t.Errorf("stored %v", keys)
	}
	t.Logf("CheckLock: %v", err)
}

func TestLockOptionsValidated(t *testing.T) {
	for _, l := range []storage.Lock{{Mode: "legal"}, {Mode: storage.LockGovernance}, {Mode: storage.LockCompliance, Days: MaxLockDays + 1}, {Days: 3}} {
		_, err := New(context.Background(), Options{Bucket: "b-1", Endpoint: "http://127.0.0.1:1", Lock: l})
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option != "Lock" {
			t.Errorf("%+v: %v, want an OptionError for Lock", l, err)
		}
	}
}

// lockedObject is a new bucket with Object Lock, a store in it that locks
// what it writes for a day, and key written there with body.
func lockedObject(t *testing.T, key, body string) (*minio.Server, string, *Store) {
	t.Helper()
	srv := sharedServer(t)
	bucket := lockedBucket(t, srv)
	s := lockStore(t, srv, bucket, storage.Lock{Mode: storage.LockGovernance, Days: 1}, nil)
	if _, err := s.Put(context.Background(), key, bytes.NewReader([]byte(body))); err != nil {
		t.Fatal(err)
	}
	return srv, bucket, s
}

// Someone with the job's credentials writes over a locked backup (a PUT
// without a version id adds a new, unlocked version): the view reads the
// locked version, not the overwrite, and a key whose versions are all
// unlocked still reads as its newest. Retention reads no lock, and no
// error, for the unlocked current version and in a bucket without Object
// Lock.
func TestIncludingDeletedPrefersLocked(t *testing.T) {
	srv, bucket, s := lockedObject(t, "k/a.dump", "locked")
	ctx := context.Background()
	for _, body := range []string{"overwrite 1", "overwrite 2"} {
		if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(s.prefix + "k/a.dump"), Body: bytes.NewReader([]byte(body))}); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(storagetest.MustGet(t, s, "k/a.dump")); got != "overwrite 2" {
		t.Fatalf("the store itself reads %q", got)
	}
	if r, err := s.Retention(ctx, "k/a.dump"); err != nil || r != (storage.Retention{}) {
		t.Errorf("Retention of the unlocked overwrite = %+v, %v, want none", r, err)
	}
	v := s.IncludingDeleted()
	if got := string(storagetest.MustGet(t, v, "k/a.dump")); got != "locked" {
		t.Errorf("the view reads %q, want the locked version under the overwrites", got)
	}
	if err := s.Delete(ctx, "k/a.dump"); err != nil {
		t.Fatal(err)
	}
	if got := string(storagetest.MustGet(t, v, "k/a.dump")); got != "locked" {
		t.Errorf("after a delete too the view reads %q, want the locked version", got)
	}

	plain := lockStore(t, srv, srv.Bucket, storage.Lock{}, nil)
	if _, err := plain.Put(ctx, "k/b", bytes.NewReader([]byte("b"))); err != nil {
		t.Fatal(err)
	}
	if r, err := plain.Retention(ctx, "k/b"); err != nil || r != (storage.Retention{}) {
		t.Errorf("Retention in a bucket without Object Lock = %+v, %v, want none", r, err)
	}
}

// retentionDenied answers every GetObjectRetention with AccessDenied and
// strips the lock headers from every HEAD, as AWS does for credentials
// without s3:GetObjectRetention.
type retentionDenied struct{ base http.RoundTripper }

func (d retentionDenied) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Query().Has("retention") {
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
	}
	resp, err := d.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodHead {
		resp.Header.Del("X-Amz-Object-Lock-Mode")
		resp.Header.Del("X-Amz-Object-Lock-Retain-Until-Date")
	}
	return resp, err
}

// Credentials that may not read a lock: Retention fails, naming the
// permission, rather than reporting a locked object as unlocked.
func TestRetentionDenied(t *testing.T) {
	srv, bucket, s := lockedObject(t, "k/a", "a")
	ctx := context.Background()
	denied, err := New(ctx, Options{Bucket: bucket, Prefix: s.prefix, Endpoint: srv.Endpoint, ForcePathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, HTTPClient: &http.Client{Transport: retentionDenied{http.DefaultTransport}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := denied.Retention(ctx, "k/a")
	if err == nil || !strings.Contains(err.Error(), "s3:GetObjectRetention") {
		t.Fatalf("Retention without the permission = %+v, %v, want an error naming s3:GetObjectRetention", r, err)
	}
	if !errors.Is(err, storage.ErrDenied) {
		t.Errorf("Retention's refusal is not storage.ErrDenied: %v", err)
	}
	t.Logf("Retention: %v", err)
}

// A bucket without Object Lock answers GetObjectRetention with
// InvalidRequest, worded by MinIO and by AWS differently: both are no lock.
func TestMissingLockConfiguration(t *testing.T) {
	for msg, want := range map[string]bool{
		"Bucket is missing ObjectLockConfiguration":          true, // MinIO
		"Bucket is missing Object Lock Configuration":        true, // AWS
		"Object is WORM protected and cannot be overwritten": false,
		"Invalid version id specified":                       false,
	} {
		if got := missingLockConfiguration(msg); got != want {
			t.Errorf("missingLockConfiguration(%q) = %v, want %v", msg, got, want)
		}
	}
}
