// Package s3 is a storage.Store in an S3 bucket (s3://bucket/prefix
// destinations), on AWS or an S3-compatible store (MinIO, R2) through
// aws-sdk-go-v2.
//
// Put streams with bounded memory through its own multipart loop; see Put
// and partSchedule for why not the SDK's transfermanager.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/pgfleet/pgfleet/internal/httpurl"
	"github.com/pgfleet/pgfleet/internal/storage"
)

var _ storage.Store = (*Store)(nil)

// Limits S3 puts on multipart uploads.
const (
	MinPartSize = 5 << 20 // every part but the last
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)

// Defaults of Options.
const (
	DefaultPartSize     = 8 << 20
	DefaultConcurrency  = 2
	DefaultAbortTimeout = 30 * time.Second
)

// Options configures New. Bucket is required; everything else has a
// default.
type Options struct {
	Bucket string
	// Prefix is put before every key; "backups" and "backups/" are the
	// same prefix.
	Prefix string
	// Region of the bucket. Default: the SDK's (AWS_REGION, the shared
	// config), else "us-east-1" when Endpoint is set.
	Region string
	// Endpoint of an S3-compatible store, e.g. "http://127.0.0.1:9000" or
	// "https://<account>.r2.cloudflarestorage.com". Default: AWS.
	Endpoint string
	// ForcePathStyle addresses the bucket in the path (host/bucket/key)
	// rather than the host name (bucket.host/key); MinIO needs it.
	ForcePathStyle bool
	// SSE is the server-side encryption: "" (the bucket's default),
	// "AES256" or "aws:kms".
	SSE string
	// KMSKeyID is the KMS key for SSE "aws:kms"; "" for the AWS managed key.
	KMSKeyID string
	// StorageClass of new objects, e.g. "STANDARD_IA"; "" for the bucket's
	// default.
	StorageClass string
	// Lock, when on, puts an Object Lock retention on every object Put
	// writes (the bucket must have Object Lock: see CheckLock), and sends
	// each write with the Content-MD5 S3 requires for it.
	Lock storage.Lock

	// RoleARN, when set, is assumed with GitHub Actions' OIDC token (web
	// identity); the job needs `permissions: id-token: write`. Without it,
	// and without static keys, the SDK's default credential chain is used.
	RoleARN string
	// RoleSessionName names the assumed role's session. Default "pgfleet".
	RoleSessionName string
	// AccessKeyID and SecretAccessKey (and SessionToken) are static
	// credentials, e.g. for MinIO or R2; exclusive with RoleARN.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// Getenv reads ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN for RoleARN.
	// Default os.Getenv. (The SDK's own settings, such as AWS_REGION, come
	// from the process environment.)
	Getenv func(string) string
	// HTTPClient sends every request: S3's, STS's and GitHub's token
	// request. Default: the SDK's client (and a plain one for the token).
	HTTPClient *http.Client

	// PartSize is the size of an upload's first parts; later parts grow
	// (see partSchedule), so any size from MinPartSize up reaches S3's
	// 5 TiB object limit within MaxParts parts. A stream shorter than
	// PartSize is stored with one PutObject. Default 8 MiB.
	PartSize int64
	// Concurrency is how many parts upload at once. Put holds at most
	// (Concurrency+1) parts in memory. Default 2.
	Concurrency int
	// AbortTimeout bounds the clean-up of a failed upload, which runs on a
	// context of its own so it happens even when Put's ctx is cancelled.
	// Default 30s.
	AbortTimeout time.Duration
}

// Store is an S3 bucket, or a prefix in one. Its methods are safe for
// concurrent use.
type Store struct {
	client       *s3.Client
	bucket       string
	prefix       string // "" or ending in "/"
	sse          types.ServerSideEncryption
	kmsKeyID     string
	storageClass types.StorageClass
	lock         storage.Lock
	sched        partSchedule
	concurrency  int
	serialAbove  int64 // parts larger than this upload one at a time (memory)
	abortTimeout time.Duration
	name         string

	// abortRetry, when set (by tests), is called after each failed attempt
	// to abort an upload, before the next.
	abortRetry func(attempt int, err error)
}

// ParseDestination splits "s3://bucket/some/prefix" into its bucket and
// prefix ("some/prefix", percent-decoded). Credentials, ports, queries and
// fragments are refused, and errors never repeat the URL, which might
// hold a secret by mistake.
func ParseDestination(dest string) (bucket, prefix string, err error) {
	u, err := url.Parse(dest)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", "", fmt.Errorf("invalid s3 URL: %w", err)
	}
	switch {
	case u.Scheme != "s3":
		return "", "", fmt.Errorf("not an s3 URL (want s3://bucket/prefix): scheme %q", u.Scheme)
	case u.User != nil:
		return "", "", errors.New("an s3 URL takes no credentials: give keys as inputs (or use a role), never in the URL")
	case u.Opaque != "":
		return "", "", errors.New("invalid s3 URL: want s3://bucket/prefix")
	case u.Host == "":
		return "", "", errors.New("s3 URL names no bucket: want s3://bucket/prefix")
	case u.Port() != "":
		return "", "", errors.New("an s3 URL takes no port: set the endpoint for an S3-compatible store")
	case u.RawQuery != "" || u.Fragment != "":
		return "", "", errors.New("an s3 URL takes no ?query or #fragment")
	}
	if err := checkBucket(u.Host); err != nil {
		return "", "", err
	}
	prefix, err = normPrefix(u.Path)
	if err != nil {
		return "", "", err
	}
	return u.Host, strings.TrimSuffix(prefix, "/"), nil
}

func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 255 {
		return fmt.Errorf("bucket name %q: want 3 to 63 characters", b)
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c >= 'A' && c <= 'Z') {
			return fmt.Errorf("bucket name %q: only letters, digits, '-', '.' and '_' are allowed", b)
		}
	}
	return nil
}

// normPrefix returns p without leading and trailing slashes, followed by
// one slash, or "" for the bucket's root.
func normPrefix(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if err := storage.CheckKey(p); err != nil {
		return "", fmt.Errorf("prefix: %w", err)
	}
	return p + "/", nil
}

// OptionError is New refusing one of its Options, as strconv.NumError is
// a number that did not parse: Option names the field at fault, so a
// caller can tell which of its own inputs to blame without reading the
// message, and Err says why. The value is not repeated beyond what Err
// says: an endpoint may hold a credential by mistake.
type OptionError struct {
	Option string // the Options field: "Bucket", "Prefix", "Region", "Endpoint", "SSE", "KMSKeyID", "Lock", "RoleARN", "AccessKeyID", "PartSize" or "Concurrency"
	Err    error
}

func (e *OptionError) Error() string { return "s3: " + e.Err.Error() }

func (e *OptionError) Unwrap() error { return e.Err }

// New validates o and returns a Store. A bad option is an *OptionError. It resolves the configuration
// (region, credential source) but sends no request: credentials are
// fetched at the first request, and refreshed by the SDK when they expire.
func New(ctx context.Context, o Options) (*Store, error) {
	if err := checkBucket(o.Bucket); err != nil {
		return nil, &OptionError{"Bucket", err}
	}
	prefix, err := normPrefix(o.Prefix)
	if err != nil {
		return nil, &OptionError{"Prefix", err}
	}
	s := &Store{
		bucket:       o.Bucket,
		prefix:       prefix,
		kmsKeyID:     o.KMSKeyID,
		storageClass: types.StorageClass(o.StorageClass),
		lock:         o.Lock,
		sched:        partSchedule{first: o.PartSize, every: partsPerDoubling},
		concurrency:  o.Concurrency,
		abortTimeout: o.AbortTimeout,
	}
	switch o.SSE {
	case "":
		if o.KMSKeyID != "" {
			return nil, &OptionError{"KMSKeyID", errors.New(`a KMS key id needs SSE "aws:kms"`)}
		}
	case "AES256":
		s.sse = types.ServerSideEncryptionAes256
		if o.KMSKeyID != "" {
			return nil, &OptionError{"KMSKeyID", errors.New(`a KMS key id needs SSE "aws:kms", not "AES256"`)}
		}
	case "aws:kms":
		s.sse = types.ServerSideEncryptionAwsKms
	default:
		return nil, &OptionError{"SSE", fmt.Errorf(`SSE %q: want "AES256" or "aws:kms"`, o.SSE)}
	}
	if err := checkLock(o.Lock); err != nil {
		return nil, &OptionError{"Lock", err}
	}
	if s.sched.first == 0 {
		s.sched.first = DefaultPartSize
	}
	if s.sched.first < MinPartSize || s.sched.first > MaxPartSize {
		return nil, &OptionError{"PartSize", fmt.Errorf("part size %d: want %d (5 MiB) to %d (5 GiB)", s.sched.first, MinPartSize, MaxPartSize)}
	}
	s.serialAbove = SerialPartSize
	if s.concurrency == 0 {
		s.concurrency = DefaultConcurrency
	}
	if s.concurrency < 1 || s.concurrency > 64 {
		return nil, &OptionError{"Concurrency", fmt.Errorf("concurrency %d: want 1 to 64", s.concurrency)}
	}
	if s.abortTimeout <= 0 {
		s.abortTimeout = DefaultAbortTimeout
	}
	var endpoint *url.URL
	if o.Endpoint != "" {
		var ok bool
		if endpoint, ok = httpurl.Parse(o.Endpoint); !ok {
			return nil, &OptionError{"Endpoint", errors.New("endpoint: want an http:// or https:// URL")}
		}
		if endpoint.User != nil {
			return nil, &OptionError{"Endpoint", errors.New("endpoint: credentials do not belong in the URL")}
		}
	}
	if o.RoleARN != "" && (o.AccessKeyID != "" || o.SecretAccessKey != "") {
		return nil, &OptionError{"RoleARN", errors.New("a role ARN and access keys are exclusive: give one")}
	}
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		return nil, &OptionError{"AccessKeyID", errors.New("give both the access key id and the secret access key, or neither")}
	}

	loadOpts := []func(*config.LoadOptions) error{
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	// o.HTTPClient is set on the clients below, not here: the SDK would
	// refuse it when AWS_CA_BUNDLE is set (it cannot add the bundle to a
	// client it did not build).
	if o.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, o.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if endpoint == nil {
			return nil, &OptionError{"Region", errors.New("no region: set the region (or AWS_REGION)")}
		}
		cfg.Region = "us-east-1"
	}
	if o.RoleARN != "" {
		getenv := o.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		tok, err := newGitHubIDToken(getenv, o.HTTPClient)
		if err != nil {
			return nil, &OptionError{"RoleARN", fmt.Errorf("role %s: %w", o.RoleARN, err)}
		}
		session := o.RoleSessionName
		if session == "" {
			session = "pgfleet"
		}
		stsClient := sts.NewFromConfig(cfg, func(so *sts.Options) {
			if o.HTTPClient != nil {
				so.HTTPClient = o.HTTPClient
			}
		})
		provider := stscreds.NewWebIdentityRoleProvider(stsClient, o.RoleARN, tok,
			func(wo *stscreds.WebIdentityRoleOptions) { wo.RoleSessionName = session })
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}

	s.client = s3.NewFromConfig(cfg, func(so *s3.Options) {
		if endpoint != nil {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.ForcePathStyle
		if o.HTTPClient != nil {
			so.HTTPClient = o.HTTPClient
		}
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})

	s.name = "s3://" + s.bucket + "/" + s.prefix
	if endpoint != nil {
		s.name += " at " + endpoint.Scheme + "://" + endpoint.Host
	}
	return s, nil
}

// String is "s3://bucket/prefix/", followed by " at <endpoint>" for an
// S3-compatible store.
func (s *Store) String() string { return s.name }

// Get opens key; storage.ErrNotFound when S3 answers NoSuchKey or 404 (but
// not NoSuchBucket, which is a configuration error).
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, s.fail("get", key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		if isNotFound(err) {
			return nil, s.fail("get", key, storage.ErrNotFound)
		}
		return nil, s.fail("get", key, err)
	}
	return out.Body, nil
}

// List pages through ListObjectsV2.
func (s *Store) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	if err := storage.CheckPrefix(prefix); err != nil {
		return nil, s.fail("list", prefix, err)
	}
	var objs []storage.Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail("list", prefix, err)
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if !ok {
				continue
			}
			objs = append(objs, storage.Object{Key: key, Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs, nil
}

// Delete removes key (S3 answers success for a missing key).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.CheckKey(key); err != nil {
		return s.fail("delete", key, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil && !isNotFound(err) {
		return s.fail("delete", key, err)
	}
	return nil
}

// Pending pages through ListMultipartUploads under the prefix.
//
// MinIO (at least up to the version the tests run) takes that prefix as an
// exact key, and without a prefix lists only the uploads started since the
// server last started. So when the prefix finds nothing, Pending also lists
// the bucket's uploads without a prefix and keeps those under it (an
// AccessDenied on that wider listing, which a policy limited to the prefix
// gives on AWS, leaves the answer empty). On MinIO an upload left by a run
// before the server restarted is then found only by its exact key; MinIO's
// own stale-upload expiry (24 hours by default) removes it.
func (s *Store) Pending(ctx context.Context, prefix string) ([]storage.Upload, error) {
	if err := storage.CheckPrefix(prefix); err != nil {
		return nil, s.fail("pending", prefix, err)
	}
	full := s.prefix + prefix
	found, err := s.listUploads(ctx, full)
	if err != nil {
		return nil, s.fail("pending", prefix, err)
	}
	if len(found) == 0 && full != "" {
		found, err = s.listUploads(ctx, "")
		if err != nil {
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied" {
				return nil, nil
			}
			return nil, s.fail("pending", prefix, err)
		}
	}
	var ups []storage.Upload
	for _, u := range found {
		k := aws.ToString(u.Key)
		if !strings.HasPrefix(k, full) {
			continue
		}
		ups = append(ups, storage.Upload{Key: k[len(s.prefix):], ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
	}
	sort.Slice(ups, func(i, j int) bool {
		if ups[i].Key != ups[j].Key {
			return ups[i].Key < ups[j].Key
		}
		return ups[i].Initiated.Before(ups[j].Initiated)
	})
	return ups, nil
}

func (s *Store) listUploads(ctx context.Context, prefix string) ([]types.MultipartUpload, error) {
	var ups []types.MultipartUpload
	p := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		ups = append(ups, page.Uploads...)
	}
	return ups, nil
}

// Abort aborts the multipart upload u; NoSuchUpload (already aborted or
// completed) is not an error.
func (s *Store) Abort(ctx context.Context, u storage.Upload) error {
	if err := storage.CheckKey(u.Key); err != nil {
		return s.fail("abort", u.Key, err)
	}
	if u.ID == "" {
		return s.fail("abort", u.Key, errors.New("empty upload id"))
	}
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &s.bucket, Key: aws.String(s.prefix + u.Key), UploadId: aws.String(u.ID),
	})
	if err != nil && !isNoSuchUpload(err) {
		return s.fail("abort", u.Key, err)
	}
	return nil
}

// fail wraps err as a storage.Error with a hint for the S3 errors people
// must fix themselves. SDK errors name the operation and request id, never
// credentials.
func (s *Store) fail(op, key string, err error) error {
	return &storage.Error{Op: op, Dest: s.name, Key: key, Err: err, Hint: hint(err)}
}

func hint(err error) string {
	var h *hinted
	if errors.As(err, &h) { // a request that knows better what to check
		return h.hint
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return ""
	}
	switch ae.ErrorCode() {
	case "AccessDenied", "AllAccessDisabled":
		return "the credentials may not do this on the bucket: the role or user needs s3:PutObject, s3:GetObject, s3:ListBucket, " +
			"s3:DeleteObject, s3:AbortMultipartUpload and s3:ListBucketMultipartUploads on it (and kms:GenerateDataKey, kms:Decrypt with SSE-KMS; " +
			"s3:GetBucketObjectLockConfiguration, s3:PutObjectRetention and s3:GetObjectRetention with object lock; s3:ListBucketVersions and s3:GetObjectVersion to restore deleted versions)"
	case "NoSuchBucket":
		return "no such bucket: check the bucket name, and the endpoint for an S3-compatible store"
	case "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return "the access key is unknown or the secret does not match it"
	case "ExpiredToken", "TokenRefreshRequired":
		return "the credentials have expired"
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return "the bucket is in another region: set the region"
	case "InvalidStorageClass":
		return "the store does not know this storage class"
	case "KMS.NotFoundException", "KMS.DisabledException", "InvalidArgument":
		return "check the SSE settings and KMS key id"
	}
	return ""
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return false
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

func isNoSuchUpload(err error) bool {
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsu) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload"
}
