// Package destination opens the store a destination input names: an s3://
// URL (storage/s3) or a file:// folder (storage/dir). It is the one place
// that knows the backends; the backup and restore modes get a
// storage.Store and the inputs to declare, and never learn which they
// have.
package destination

import (
	"context"
	"errors"
	"path/filepath"
	"strings"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
	"github.com/pgfleet/pgfleet/internal/storage/s3"
)

// Inputs both backup and restore read, declared once here so the two
// declarations are identical (the input table merges them).
var (
	InputDestination = &input.Input{Name: "destination", Description: "Required for backup and restore (status: the backups to report on): where backups live: s3://bucket/prefix, or a local folder: file:backups, relative to the workspace (as the action, a folder outside the workspace is refused: the container's files vanish when the step ends), or file:///path on the CLI. " +
		"Each tenant's backups go to <prefix>/<project name slug>-<project id>/<UTC time>.dump.zst, each with a <UTC time>.manifest.json beside it."}
	InputAWSRegion        = &input.Input{Name: "aws-region", Description: "Region of the S3 bucket. Default: AWS_REGION, or us-east-1 with s3-endpoint."}
	InputS3Endpoint       = &input.Input{Name: "s3-endpoint", Description: "Endpoint of an S3-compatible store (Cloudflare R2, MinIO, GCS interoperability), e.g. https://<account>.r2.cloudflarestorage.com. Default: AWS."}
	InputS3ForcePathStyle = &input.Input{Name: "s3-force-path-style", Default: "false", Bool: true, Description: "Address the bucket in the URL path (endpoint/bucket/key) instead of the host name, as MinIO needs."}
	InputAWSRoleARN       = &input.Input{Name: "aws-role-arn", Description: "IAM role to assume with the job's GitHub OIDC token (the job needs permissions: id-token: write). Without it, the AWS SDK's standard credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the step's env, or what aws-actions/configure-aws-credentials set."}
)

// Inputs only a writer (backup) reads: settings of the objects it creates.
var (
	InputS3SSE          = &input.Input{Name: "s3-sse", Description: "S3 server-side encryption of new objects, AES256 or aws:kms. Default: the bucket's."}
	InputS3KMSKeyID     = &input.Input{Name: "s3-kms-key-id", Description: "The KMS key for s3-sse aws:kms. Default: the AWS managed key."}
	InputS3StorageClass = &input.Input{Name: "s3-storage-class", Description: "Storage class of new objects, e.g. STANDARD_IA. Default: the bucket's."}
	// Object Lock: only an S3 bucket created with it can honour these
	// (CheckLock asks it).
	InputObjectLockMode = &input.Input{Name: "object-lock-mode", Description: "S3 Object Lock on every dump and manifest backup writes: governance (whoever holds s3:BypassGovernanceRetention can still lift it) or compliance (no one can, root included, until it passes). " +
		"Needs object-lock-days, and a bucket created with Object Lock (checked before any tenant is touched). A locked backup survives whoever steals the job's credentials: a delete only hides it behind a delete marker (restore it with restore-include-deleted), and retention keeps it until its lock has passed. Not for a folder destination."}
	InputObjectLockDays = &input.Input{Name: "object-lock-days", Description: "With object-lock-mode: how many days each new dump and manifest stays locked from its upload (1 to 36500). A retention-days shorter than this is warned about: backups past retention-days stay, reported as locked, until their lock passes."}
)

// Inputs are the destination inputs both modes declare.
func Inputs() []*input.Input {
	return []*input.Input{InputDestination, InputAWSRegion, InputS3Endpoint, InputS3ForcePathStyle, InputAWSRoleARN}
}

// WriteInputs are the inputs a mode that writes objects declares besides
// Inputs; their values go in WriteOptions.
func WriteInputs() []*input.Input {
	return []*input.Input{InputS3SSE, InputS3KMSKeyID, InputS3StorageClass, InputObjectLockMode, InputObjectLockDays}
}

// WriteOptions are the settings of new objects (WriteInputs' values), ""
// for the store's default. They exist only in S3: with a folder
// destination, one that is set is a bad input.
type WriteOptions struct {
	SSE, KMSKeyID, StorageClass string
	Lock                        storage.Lock // ReadLock's; check it with CheckLock before writing
}

// Env is what opening a store needs from the run.
type Env struct {
	Inputs    *input.Values
	Workspace string
	Getenv    func(string) string
	Secret    func(string)
}

// s3OptionInputs names the input behind each s3.Options field Open sets
// from one; an *s3.OptionError about any other field is the destination's.
var s3OptionInputs = map[string]*input.Input{
	"Region":   InputAWSRegion,
	"Endpoint": InputS3Endpoint,
	"RoleARN":  InputAWSRoleARN,
	"SSE":      InputS3SSE,
	"KMSKeyID": InputS3KMSKeyID,
	"Lock":     InputObjectLockMode,
}

// Open opens the destination input's store. Problems are recorded in
// env.Inputs (a nil store is returned then). No request is sent.
func Open(ctx context.Context, env Env, w WriteOptions) storage.Store {
	in := env.Inputs
	// The SDK reads these itself; registering them keeps them out of
	// anything pgfleet writes.
	for _, k := range []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"} {
		env.Secret(env.Getenv(k))
	}
	dest := in.String(InputDestination)
	switch {
	case dest == "":
		in.Bad(InputDestination, "required: s3://bucket/prefix or file:///path")
		return nil
	case strings.HasPrefix(dest, "file:"):
		return openFolder(env, dest, w)
	case strings.HasPrefix(dest, "s3:"):
		return openS3(ctx, env, dest, w)
	}
	start := dest // cut: it may hold a secret
	if len(start) > 12 {
		start = start[:12] + "…"
	}
	in.Bad(InputDestination, "want s3://bucket/prefix or file:///path, got a value starting %q", start)
	return nil
}

// openFolder opens a file:// destination, relative to the workspace, and
// refuses the inputs that only S3 reads.
func openFolder(env Env, dest string, w WriteOptions) storage.Store {
	in := env.Inputs
	p, err := dir.ParseDestination(dest)
	if err != nil {
		in.Bad(InputDestination, "%v", err)
		return nil
	}
	if !filepath.IsAbs(p) && env.Workspace != "" {
		p = filepath.Join(env.Workspace, p)
	}
	s, err := dir.New(p)
	if err != nil {
		in.Bad(InputDestination, "%v", err)
		return nil
	}
	for _, name := range []*input.Input{InputAWSRoleARN, InputS3Endpoint} {
		if in.IsSet(name) {
			in.Bad(name, "only for an s3:// destination")
		}
	}
	for _, set := range []struct {
		value string
		input *input.Input
	}{
		{w.SSE, InputS3SSE}, {w.KMSKeyID, InputS3KMSKeyID}, {w.StorageClass, InputS3StorageClass},
	} {
		if set.value != "" {
			in.Bad(set.input, "only for an s3:// destination")
		}
	}
	if w.Lock.On() {
		in.Bad(InputObjectLockMode, "a local folder cannot lock what it writes: Object Lock needs an s3:// destination in a bucket created with Object Lock")
	}
	return s
}

// openS3 opens an s3:// destination; a refused option is blamed on the
// input it came from.
func openS3(ctx context.Context, env Env, dest string, w WriteOptions) storage.Store {
	in := env.Inputs
	bucket, prefix, err := s3.ParseDestination(dest)
	if err != nil {
		in.Bad(InputDestination, "%v", err)
		return nil
	}
	s, err := s3.New(ctx, s3.Options{
		Bucket:         bucket,
		Prefix:         prefix,
		Region:         in.String(InputAWSRegion),
		Endpoint:       in.String(InputS3Endpoint),
		ForcePathStyle: in.Bool(InputS3ForcePathStyle),
		RoleARN:        in.String(InputAWSRoleARN),
		SSE:            w.SSE,
		KMSKeyID:       w.KMSKeyID,
		StorageClass:   w.StorageClass,
		Lock:           w.Lock,
		Getenv:         env.Getenv,
	})
	var bad *s3.OptionError
	switch {
	case errors.As(err, &bad):
		name, ok := s3OptionInputs[bad.Option]
		if !ok {
			name = InputDestination
		}
		in.Bad(name, "%v", bad.Err)
		return nil
	case err != nil:
		in.Bad(InputDestination, "%s", strings.TrimPrefix(err.Error(), "s3: "))
		return nil
	}
	return s
}
