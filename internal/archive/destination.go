package archive

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
	"github.com/pgfleet/pgfleet/internal/storage/s3"
)

// Inputs both backup and restore read, declared once here so the two
// declarations are identical (the input table merges them); the S3 write
// options are backup's, here because opening the store reads them.
var (
	InputDestination = &input.Input{Name: "destination", Description: "Required: where backups live: s3://bucket/prefix, or a local folder: file:backups, relative to the workspace (as the action, a folder outside the workspace is refused: the container's files vanish when the step ends), or file:///path on the CLI. " +
		"Each tenant's backups go to <prefix>/<project name slug>-<project id>/<UTC time>.dump.zst, each with a <UTC time>.manifest.json beside it."}
	InputAWSRegion        = &input.Input{Name: "aws-region", Description: "Region of the S3 bucket. Default: AWS_REGION, or us-east-1 with s3-endpoint."}
	InputS3Endpoint       = &input.Input{Name: "s3-endpoint", Description: "Endpoint of an S3-compatible store (Cloudflare R2, MinIO, GCS interoperability), e.g. https://<account>.r2.cloudflarestorage.com. Default: AWS."}
	InputS3ForcePathStyle = &input.Input{Name: "s3-force-path-style", Default: "false", Bool: true, Description: "Address the bucket in the URL path (endpoint/bucket/key) instead of the host name, as MinIO needs."}
	InputAWSRoleARN       = &input.Input{Name: "aws-role-arn", Description: "IAM role to assume with the job's GitHub OIDC token (the job needs permissions: id-token: write). Without it, the AWS SDK's standard credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the step's env, or what aws-actions/configure-aws-credentials set."}
	InputS3SSE            = &input.Input{Name: "s3-sse", Description: "S3 server-side encryption of new objects, AES256 or aws:kms. Default: the bucket's."}
	InputS3KMSKeyID       = &input.Input{Name: "s3-kms-key-id", Description: "The KMS key for s3-sse aws:kms. Default: the AWS managed key."}
	InputS3StorageClass   = &input.Input{Name: "s3-storage-class", Description: "Storage class of new objects, e.g. STANDARD_IA. Default: the bucket's."}
	InputPgDumpPath       = &input.Input{Name: "pg-dump-path", Default: "pg_dump", Description: "The pg_dump to run: its major version must be at least every server's (Neon runs 14-18; the action's image ships PostgreSQL 18's). Restore runs pg_restore and psql from the same folder."}
)

// OutputBytes is the output both modes set.
var OutputBytes = input.Output{Name: "bytes", Description: "Bytes of backup objects (compressed and encrypted, as stored): written by backup, read by restore."}

// StoreInputs are the destination inputs both modes declare.
func StoreInputs() []*input.Input {
	return []*input.Input{InputDestination, InputAWSRegion, InputS3Endpoint, InputS3ForcePathStyle, InputAWSRoleARN}
}

// WriteOptions are the S3 settings only a writer needs.
type WriteOptions struct {
	SSE, KMSKeyID, StorageClass string
}

// StoreEnv is what opening a store needs from the run.
type StoreEnv struct {
	Inputs    *input.Values
	Workspace string
	Getenv    func(string) string
	Secret    func(string)
}

// OpenStore opens the destination input's store. Problems are recorded in
// env.Inputs (a nil store is returned then). No request is sent.
func OpenStore(ctx context.Context, env StoreEnv, w WriteOptions) storage.Store {
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
		for _, s3Only := range []*input.Input{InputAWSRoleARN, InputS3Endpoint} {
			if in.IsSet(s3Only) {
				in.Bad(s3Only, "only for an s3:// destination")
			}
		}
		return s
	case strings.HasPrefix(dest, "s3:"):
		bucket, prefix, err := s3.ParseDestination(dest)
		if err != nil {
			in.Bad(InputDestination, "%v", err)
			return nil
		}
		o := s3.Options{
			Bucket:         bucket,
			Prefix:         prefix,
			Region:         in.String(InputAWSRegion),
			Endpoint:       in.String(InputS3Endpoint),
			ForcePathStyle: in.Bool(InputS3ForcePathStyle),
			RoleARN:        in.String(InputAWSRoleARN),
			SSE:            w.SSE,
			KMSKeyID:       w.KMSKeyID,
			StorageClass:   w.StorageClass,
			Getenv:         env.Getenv,
		}
		s, err := s3.New(ctx, o)
		if err != nil {
			in.Bad(s3InputFor(err.Error()), "%s", strings.TrimPrefix(err.Error(), "s3: "))
			return nil
		}
		return s
	}
	in.Bad(InputDestination, "want s3://bucket/prefix or file:///path, got a value starting %q", cut(dest, 12))
	return nil
}

// s3InputFor names the input an s3.New error is about.
func s3InputFor(msg string) *input.Input {
	switch {
	case strings.Contains(msg, "role"), strings.Contains(msg, "OIDC"), strings.Contains(msg, "ACTIONS_ID_TOKEN"):
		return InputAWSRoleARN
	case strings.Contains(msg, "endpoint"):
		return InputS3Endpoint
	case strings.Contains(msg, "region"):
		return InputAWSRegion
	case strings.Contains(msg, "KMS"):
		return InputS3KMSKeyID
	case strings.Contains(msg, "SSE"):
		return InputS3SSE
	}
	return InputDestination
}
