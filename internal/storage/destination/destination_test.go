package destination

import (
	"context"
	"errors"
	"testing"

	"github.com/pgfleet/pgfleet/internal/input"
)

// open runs Open on the given inputs and returns whether a store came
// back and the inputs it blamed.
func open(t *testing.T, raw map[string]string, w WriteOptions) (opened bool, blamed []string) {
	t.Helper()
	table := input.NewTable([]input.ModeDecl{{Name: "backup", Inputs: append(Inputs(), WriteInputs()...)}})
	in := input.NewValues(table, func(name string) string { return raw[name] })
	env := Env{Inputs: in, Workspace: t.TempDir(), Getenv: func(string) string { return "" }, Secret: func(string) {}}
	s := Open(context.Background(), env, w)
	var joined interface{ Unwrap() []error }
	if errors.As(in.Err(), &joined) {
		for _, e := range joined.Unwrap() {
			var bad *input.Error
			if errors.As(e, &bad) {
				blamed = append(blamed, bad.Input)
			}
		}
	}
	return s != nil, blamed
}

// TestOpenBlamesTheInput: a store refusing an option is blamed on the
// input the option came from, told by the error's type, not its words.
func TestOpenBlamesTheInput(t *testing.T) {
	// The machine's AWS settings stay out: the region is what the inputs
	// say, and no profile is read.
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	const minio = "http://127.0.0.1:9000"
	for _, tc := range []struct {
		name  string
		raw   map[string]string
		w     WriteOptions
		blame string // the one input blamed, "" for none (a folder opens even when an S3 input is set, and that input is bad)
	}{
		{"s3", map[string]string{"destination": "s3://bkt/p", "s3-endpoint": minio}, WriteOptions{}, ""},
		{"folder", map[string]string{"destination": "file:backups"}, WriteOptions{}, ""},
		{"no destination", map[string]string{}, WriteOptions{}, "destination"},
		{"other scheme", map[string]string{"destination": "gs://bkt/p"}, WriteOptions{}, "destination"},
		{"bucket name", map[string]string{"destination": "s3://b/p", "s3-endpoint": minio}, WriteOptions{}, "destination"},
		{"endpoint", map[string]string{"destination": "s3://bkt/p", "s3-endpoint": "127.0.0.1:9000"}, WriteOptions{}, "s3-endpoint"},
		{"no region", map[string]string{"destination": "s3://bkt/p"}, WriteOptions{}, "aws-region"},
		{"role without OIDC", map[string]string{"destination": "s3://bkt/p", "s3-endpoint": minio, "aws-role-arn": "arn:aws:iam::123456789012:role/backup"}, WriteOptions{}, "aws-role-arn"},
		{"KMS key without aws:kms", map[string]string{"destination": "s3://bkt/p", "s3-endpoint": minio}, WriteOptions{KMSKeyID: "alias/x"}, "s3-kms-key-id"},
		{"SSE", map[string]string{"destination": "s3://bkt/p", "s3-endpoint": minio}, WriteOptions{SSE: "aes"}, "s3-sse"},
		{"role with a folder", map[string]string{"destination": "file:backups", "aws-role-arn": "arn:aws:iam::123456789012:role/backup"}, WriteOptions{}, "aws-role-arn"},
		{"storage class with a folder", map[string]string{"destination": "file:backups"}, WriteOptions{StorageClass: "STANDARD_IA"}, "s3-storage-class"},
	} {
		opened, blamed := open(t, tc.raw, tc.w)
		switch {
		case tc.blame == "" && (!opened || len(blamed) > 0):
			t.Errorf("%s: blamed %v, want the store opened", tc.name, blamed)
		case tc.blame != "" && (len(blamed) != 1 || blamed[0] != tc.blame):
			t.Errorf("%s: blamed %v, want %s", tc.name, blamed, tc.blame)
		}
	}
}
