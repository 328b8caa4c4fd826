package minio

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStopRestartClose(t *testing.T) {
	ctx := context.Background()
	began := time.Now()
	s := StartForTest(t)
	t.Logf("started in %s", time.Since(began).Round(time.Millisecond))
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") || s.AccessKey == "" || s.SecretKey == "" || s.Bucket == "" {
		t.Fatalf("server = %+v", s)
	}
	c := s.Client()
	put := func(key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: strings.NewReader("hello")},
			func(o *s3.Options) { o.RetryMaxAttempts = 1 })
		return err
	}
	if err := put("before"); err != nil {
		t.Fatal(err)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := put("while-stopped"); err == nil {
		t.Fatal("PutObject to a stopped server succeeded")
	}

	endpoint := s.Endpoint
	began = time.Now()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %s", time.Since(began).Round(time.Millisecond))
	if s.Endpoint != endpoint {
		t.Errorf("Restart moved the server from %s to %s", endpoint, s.Endpoint)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("before")})
	if err != nil {
		t.Fatalf("object put before the restart: %v", err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "hello" {
		t.Errorf("object put before the restart holds %q", b)
	}

	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Close left %s behind (stat err = %v)", dir, err)
	}
	if err := put("after-close"); err == nil {
		t.Error("PutObject after Close succeeded")
	}
}
