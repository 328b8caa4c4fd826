package s3

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParseDestination(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix, err string }{
		{"s3://bkt", "bkt", "", ""},
		{"s3://bkt/", "bkt", "", ""},
		{"s3://bkt/backups", "bkt", "backups", ""},
		{"s3://bkt/backups/", "bkt", "backups", ""},
		{"s3://bkt//backups/daily/", "bkt", "backups/daily", ""},
		{"s3://bkt/my%20backups", "bkt", "my backups", ""},
		{"s3://my.bucket-1/p", "my.bucket-1", "p", ""},
		{"https://bkt/p", "", "", "not an s3 URL"},
		{"s3://AKIA:s3cr3t-value@bkt/p", "", "", "no credentials"},
		{"s3:///p", "", "", "no bucket"},
		{"s3://bkt:9000/p", "", "", "no port"},
		{"s3://bkt/p?x=1", "", "", "no ?query"},
		{"s3://bkt/a/../b", "", "", "invalid key"},
		{"s3://b/p", "", "", "3 to 63"},
		{"s3://bk%zzt/p", "", "", "invalid s3 URL"},
	} {
		b, p, err := ParseDestination(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDestination(%q): err = %v, want it to say %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t-value") {
				t.Errorf("ParseDestination(%q): the error repeats the secret: %v", tc.in, err)
			}
			continue
		}
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseDestination(%q) = %q, %q, %v; want %q, %q", tc.in, b, p, err, tc.bucket, tc.prefix)
		}
	}
}

func TestNewValidates(t *testing.T) {
	isolateAWSConfig(t)
	ctx := context.Background()
	ok := Options{Bucket: "bkt", Region: "eu-west-1"}
	for _, tc := range []struct {
		name   string
		mod    func(*Options)
		option string // the OptionError's Option
		err    string
	}{
		{"bad SSE", func(o *Options) { o.SSE = "aes" }, "SSE", "SSE"},
		{"KMS key without aws:kms", func(o *Options) { o.SSE = "AES256"; o.KMSKeyID = "k" }, "KMSKeyID", "aws:kms"},
		{"part too small", func(o *Options) { o.PartSize = 1 << 20 }, "PartSize", "part size"},
		{"part too big", func(o *Options) { o.PartSize = 6 << 30 }, "PartSize", "part size"},
		{"concurrency", func(o *Options) { o.Concurrency = -1 }, "Concurrency", "concurrency"},
		{"endpoint", func(o *Options) { o.Endpoint = "127.0.0.1:9000" }, "Endpoint", "endpoint"},
		{"endpoint credentials", func(o *Options) { o.Endpoint = "https://key:s3cr3t-value@host" }, "Endpoint", "credentials"},
		{"role and keys", func(o *Options) { o.RoleARN = roleARN; o.AccessKeyID, o.SecretAccessKey = "a", "b" }, "RoleARN", "exclusive"},
		{"role without OIDC", func(o *Options) { o.RoleARN = roleARN; o.Getenv = func(string) string { return "" } }, "RoleARN", "OIDC token"},
		{"half a key pair", func(o *Options) { o.AccessKeyID = "a" }, "AccessKeyID", "both"},
		{"no region", func(o *Options) { o.Region = "" }, "Region", "no region"},
		{"bucket", func(o *Options) { o.Bucket = "b" }, "Bucket", "3 to 63"},
		{"prefix", func(o *Options) { o.Prefix = "a/../b" }, "Prefix", "prefix"},
	} {
		o := ok
		tc.mod(&o)
		_, err := New(ctx, o)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.err)
		}
		var bad *OptionError
		if !errors.As(err, &bad) || bad.Option != tc.option {
			t.Errorf("%s: err = %#v, want an *OptionError about %s", tc.name, err, tc.option)
		} else if !strings.HasPrefix(err.Error(), "s3: ") || strings.HasPrefix(bad.Err.Error(), "s3: ") {
			t.Errorf("%s: Error() = %q, cause %q: want \"s3: \" once, before the cause", tc.name, err, bad.Err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t-value") {
			t.Errorf("%s: the error repeats a secret: %v", tc.name, err)
		}
	}

	s, err := New(ctx, Options{Bucket: "bkt", Prefix: "/backups/", Endpoint: "http://127.0.0.1:9000", SSE: "aws:kms", KMSKeyID: "alias/x", StorageClass: "STANDARD_IA"})
	if err != nil {
		t.Fatal(err)
	}
	if s.prefix != "backups/" || s.String() != "s3://bkt/backups/ at http://127.0.0.1:9000" {
		t.Errorf("prefix %q, String %q", s.prefix, s)
	}
	if s.sched.first != DefaultPartSize || s.concurrency != DefaultConcurrency || s.abortTimeout != DefaultAbortTimeout {
		t.Errorf("defaults: part %d, concurrency %d, abort timeout %s", s.sched.first, s.concurrency, s.abortTimeout)
	}
}
