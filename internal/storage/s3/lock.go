package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/pgfleet/pgfleet/internal/storage"
)

// Object Lock, and reading the versions a delete hid.
//
// Why Content-MD5 and not the SDK's ChecksumAlgorithm: S3 refuses an
// Object Lock write without Content-MD5 or an x-amz-checksum-*. Setting
// ChecksumAlgorithm makes the SDK compute one even with checksums "when
// required" (the client's setting, for S3-compatible stores), but over
// HTTPS it sends it as an aws-chunked trailer, the very encoding several
// S3-compatible stores refused in 2025. Every part is already in memory,
// so Put computes its MD5 itself and sends it in the Content-MD5 header,
// which AWS, MinIO and the other stores all accept, over HTTP and HTTPS
// alike; and only when a lock is on, so unlocked backups cost no hashing.

var (
	_ storage.Locker    = (*Store)(nil)
	_ storage.Versioned = (*Store)(nil)
	_ storage.Store     = (*deletedView)(nil)
)

// MaxLockDays bounds Options.Lock.Days: a hundred years.
const MaxLockDays = 36500

func checkLock(l storage.Lock) error {
	switch {
	case l.Mode == "" && l.Days == 0:
		return nil
	case l.Mode != storage.LockGovernance && l.Mode != storage.LockCompliance:
		return fmt.Errorf("object lock mode %q: want %q or %q", l.Mode, storage.LockGovernance, storage.LockCompliance)
	case l.Days < 1 || l.Days > MaxLockDays:
		return fmt.Errorf("object lock days %d: want 1 to %d", l.Days, MaxLockDays)
	}
	return nil
}

// lockHeaders are the mode and retain-until date of an object written now,
// nil when no lock is on.
func (s *Store) lockHeaders() (types.ObjectLockMode, *time.Time) {
	if !s.lock.On() {
		return "", nil
	}
	until := time.Now().UTC().Add(time.Duration(s.lock.Days) * 24 * time.Hour).Truncate(time.Second)
	return types.ObjectLockMode(strings.ToUpper(string(s.lock.Mode))), &until
}

// contentMD5 is the Content-MD5 of p when a lock is on (S3 requires an
// integrity check on every locked write, each part included), else nil.
func (s *Store) contentMD5(p part) *string {
	if !s.lock.On() {
		return nil
	}
	h := md5.New()
	left := p.n
	for _, c := range p.chunks {
		k := min(int64(len(c)), left)
		h.Write(c[:k])
		left -= k
	}
	return aws.String(base64.StdEncoding.EncodeToString(h.Sum(nil)))
}

// CheckLock asks GetObjectLockConfiguration whether the bucket has Object
// Lock enabled (only a bucket created with it can).
func (s *Store) CheckLock(ctx context.Context) error {
	out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &s.bucket})
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae) && ae.ErrorCode() == "ObjectLockConfigurationNotFoundError":
		return s.fail("check object lock", "", fmt.Errorf("%w on bucket %s: Object Lock can only be turned on when a bucket is created (aws s3api create-bucket --object-lock-enabled-for-bucket)", storage.ErrNoLock, s.bucket))
	case errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied":
		return s.fail("check object lock", "", &hinted{err: err, denied: true, hint: "the credentials need s3:GetBucketObjectLockConfiguration on the bucket to check its Object Lock"})
	case err != nil:
		return s.fail("check object lock", "", err)
	case out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled:
		return s.fail("check object lock", "", fmt.Errorf("%w on bucket %s", storage.ErrNoLock, s.bucket))
	}
	return nil
}

// Retention reads the lock of key's current version with
// GetObjectRetention. Not HeadObject: S3 shows the lock headers on a HEAD
// only to credentials with s3:GetObjectRetention and silently leaves them
// out for others, so a HEAD cannot tell "no lock" from "not allowed to
// see it", and retention would prune locked backups. GetObjectRetention
// answers AccessDenied instead, which fails loudly.
func (s *Store) Retention(ctx context.Context, key string) (storage.Retention, error) {
	if err := storage.CheckKey(key); err != nil {
		return storage.Retention{}, s.fail("retention", key, err)
	}
	r, err := s.retention(ctx, s.prefix+key, nil)
	if err != nil {
		return storage.Retention{}, s.fail("retention", key, err)
	}
	return r, nil
}

// retention is the lock of one version of the object full (its current
// version when version is nil). A version without a retention is the zero
// Retention: AWS and MinIO answer NoSuchObjectLockConfiguration for it
// (MinIO with status 400; minio issue 9943 made it match AWS), and MinIO
// InvalidRequest "Bucket is missing ObjectLockConfiguration" in a bucket
// without Object Lock, where no version can be locked. A missing key or a
// delete marker (NoSuchKey on MinIO, MethodNotAllowed on AWS) is no lock
// either: there is nothing left to keep.
func (s *Store) retention(ctx context.Context, full string, version *string) (storage.Retention, error) {
	out, err := s.client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &s.bucket, Key: &full, VersionId: version})
	var ae smithy.APIError
	isAPI := errors.As(err, &ae)
	switch {
	case err == nil:
	case isAPI && ae.ErrorCode() == "NoSuchObjectLockConfiguration",
		isAPI && ae.ErrorCode() == "InvalidRequest" && missingLockConfiguration(ae.ErrorMessage()):
		return storage.Retention{}, nil
	case isAPI && ae.ErrorCode() == "AccessDenied":
		return storage.Retention{}, &hinted{err: err, denied: true, hint: "the credentials need s3:GetObjectRetention on the bucket's objects to read their Object Lock: without it a locked version cannot be told from an unlocked one, " +
			"so retention cannot keep locked backups and restore-include-deleted cannot pick the locked version under an overwrite; in a bucket without Object Lock, " +
			"s3:GetBucketObjectLockConfiguration alone lets backup learn that once a run and read no lock"}
	case isAPI && ae.ErrorCode() == "MethodNotAllowed", isNotFound(err):
		return storage.Retention{}, nil // a delete marker (MethodNotAllowed), or no such key
	default:
		return storage.Retention{}, err
	}
	if out.Retention == nil || out.Retention.Mode == "" || out.Retention.RetainUntilDate == nil {
		return storage.Retention{}, nil
	}
	return storage.Retention{Mode: storage.LockMode(strings.ToLower(string(out.Retention.Mode))), Until: *out.Retention.RetainUntilDate}, nil
}

// missingLockConfiguration reports whether an InvalidRequest's message
// says the bucket has no Object Lock: MinIO writes "Bucket is missing
// ObjectLockConfiguration", AWS (and the stores copying it) "Bucket is
// missing Object Lock Configuration".
func missingLockConfiguration(msg string) bool {
	return strings.Contains(strings.ToLower(strings.ReplaceAll(msg, " ", "")), "missingobjectlockconfiguration")
}

// hinted is an error with the hint Store.fail should give for it.
type hinted struct {
	err    error
	hint   string
	denied bool // S3 answered AccessDenied: errors.Is(storage.ErrDenied)
}

func (h *hinted) Error() string        { return h.err.Error() }
func (h *hinted) Unwrap() error        { return h.err }
func (h *hinted) Is(target error) bool { return h.denied && target == storage.ErrDenied }

// IsLockRefusal reports whether err is S3 refusing to delete or overwrite
// a locked version: AccessDenied on AWS, InvalidRequest "Object is WORM
// protected" on MinIO. For tests and messages.
func IsLockRefusal(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.ErrorCode() == "AccessDenied" || ae.ErrorCode() == "InvalidRequest" && strings.Contains(ae.ErrorMessage(), "WORM")
}

// IncludingDeleted is the bucket seen through ListObjectVersions: a key
// whose current version is a delete marker lists and reads as the newest
// version before it.
func (s *Store) IncludingDeleted() storage.Store { return &deletedView{s: s} }

// deletedView is Store.IncludingDeleted.
type deletedView struct{ s *Store }

func (v *deletedView) String() string { return v.s.name + " (deleted versions included)" }

// List pages through ListObjectVersions and keeps, for each key, its
// newest version that is not a delete marker (S3 lists a key's versions
// newest first).
func (v *deletedView) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	if err := storage.CheckPrefix(prefix); err != nil {
		return nil, v.s.fail("list versions", prefix, err)
	}
	found, err := v.s.newestVersions(ctx, v.s.prefix+prefix)
	if err != nil {
		return nil, v.s.fail("list versions", prefix, err)
	}
	objs := make([]storage.Object, 0, len(found))
	for _, f := range found {
		if key, ok := strings.CutPrefix(aws.ToString(f.Key), v.s.prefix); ok {
			objs = append(objs, storage.Object{Key: key, Size: aws.ToInt64(f.Size), LastModified: aws.ToTime(f.LastModified)})
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs, nil
}

// Get opens the version of key to restore: its newest version that is
// not a delete marker, unless the key has several (someone wrote over
// it, which pgfleet never does: each backup has its own names) and an
// older one is still locked, then the newest locked one. An overwrite with
// the job's credentials must not hide the version the lock protects. Only
// a key with several versions costs a GetObjectRetention per version, and
// restore Gets just the chosen backup's manifest and dump; List shows the
// newest version's size, which the manifest's checks do not rely on.
func (v *deletedView) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, v.s.fail("get", key, err)
	}
	full := v.s.prefix + key
	var versions []types.ObjectVersion // newest first
	err := v.s.eachVersion(ctx, full, func(o types.ObjectVersion) {
		if aws.ToString(o.Key) == full {
			versions = append(versions, o)
		}
	})
	if err != nil {
		return nil, v.s.fail("get", key, err)
	}
	if len(versions) == 0 {
		return nil, v.s.fail("get", key, storage.ErrNotFound)
	}
	chosen := versions[0]
	if len(versions) > 1 {
		now := time.Now()
		for _, o := range versions {
			r, err := v.s.retention(ctx, full, o.VersionId)
			if err != nil {
				return nil, v.s.fail("get", key, err)
			}
			if r.Holds(now) {
				chosen = o
				break
			}
		}
	}
	out, err := v.s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &v.s.bucket, Key: &full, VersionId: chosen.VersionId})
	if err != nil {
		if isNotFound(err) {
			return nil, v.s.fail("get", key, storage.ErrNotFound)
		}
		return nil, v.s.fail("get", key, err)
	}
	return out.Body, nil
}

// newestVersions lists the versions under prefix and returns each key's
// newest one that is not a delete marker.
func (s *Store) newestVersions(ctx context.Context, prefix string) ([]types.ObjectVersion, error) {
	seen := map[string]bool{}
	var found []types.ObjectVersion
	err := s.eachVersion(ctx, prefix, func(o types.ObjectVersion) {
		if k := aws.ToString(o.Key); !seen[k] {
			seen[k] = true
			found = append(found, o)
		}
	})
	return found, err
}

// eachVersion pages through ListObjectVersions under prefix and calls fn
// for every version that is not a delete marker, each key's newest first
// (the order S3 lists them in).
func (s *Store) eachVersion(ctx context.Context, prefix string, fn func(types.ObjectVersion)) error {
	in := &s3.ListObjectVersionsInput{Bucket: &s.bucket, Prefix: aws.String(prefix)}
	for {
		page, err := s.client.ListObjectVersions(ctx, in)
		if err != nil {
			return err
		}
		for _, o := range page.Versions {
			fn(o)
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.VersionIdMarker = page.NextKeyMarker, page.NextVersionIdMarker
	}
}

func (v *deletedView) Put(context.Context, string, io.Reader) (int64, error) {
	return 0, v.s.fail("put", "", storage.ErrReadOnly)
}

func (v *deletedView) Delete(_ context.Context, key string) error {
	return v.s.fail("delete", key, storage.ErrReadOnly)
}

func (v *deletedView) Pending(ctx context.Context, prefix string) ([]storage.Upload, error) {
	return v.s.Pending(ctx, prefix)
}

func (v *deletedView) Abort(_ context.Context, u storage.Upload) error {
	return v.s.fail("abort", u.Key, storage.ErrReadOnly)
}
