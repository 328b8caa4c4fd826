package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/storagetest"
)

const (
	requestToken = "gh-request-token-1234"
	idToken      = "eyJ.github-oidc-jwt.sig"
	roleARN      = "arn:aws:iam::123456789012:role/pgfleet-backup"
)

// fakeGitHub serves the Actions OIDC token endpoint; status overrides 200.
func fakeGitHub(t *testing.T, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer "+requestToken {
			t.Errorf("token request: Authorization = %q", got)
		}
		if got := r.URL.Query().Get("audience"); got != "sts.amazonaws.com" {
			t.Errorf("token request: audience = %q", got)
		}
		if got := r.URL.Query().Get("api-version"); got != "2.0" {
			t.Errorf("token request: the URL's own query was lost: api-version = %q", got)
		}
		if status != 0 {
			http.Error(w, "nope", status)
			return
		}
		fmt.Fprintf(w, `{"count":1,"value":%q}`, idToken)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func githubEnv(gh *httptest.Server) func(string) string {
	return func(k string) string {
		switch k {
		case "ACTIONS_ID_TOKEN_REQUEST_URL":
			return gh.URL + "/token?api-version=2.0"
		case "ACTIONS_ID_TOKEN_REQUEST_TOKEN":
			return requestToken
		}
		return ""
	}
}

// isolateAWSConfig keeps the machine's AWS settings out of the test.
func isolateAWSConfig(t *testing.T) {
	for _, k := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
}

// TestRoleViaGitHubOIDC runs a store with RoleARN against MinIO, through a
// fake GitHub token endpoint and a fake STS that hands out MinIO's keys for
// the right token.
func TestRoleViaGitHubOIDC(t *testing.T) {
	isolateAWSConfig(t)
	minioSrv := sharedServer(t)
	gh := fakeGitHub(t, 0)
	var stsCalls atomic.Int32
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stsCalls.Add(1)
		r.ParseForm()
		for k, want := range map[string]string{"Action": "AssumeRoleWithWebIdentity", "RoleArn": roleARN, "WebIdentityToken": idToken, "RoleSessionName": "pgfleet"} {
			if got := r.Form.Get(k); got != want {
				t.Errorf("STS request: %s = %q, want %q", k, got, want)
				http.Error(w, "<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>", 400)
				return
			}
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/pgfleet-backup/pgfleet</Arn><AssumedRoleId>AROA:pgfleet</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult>
<ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, minioSrv.AccessKey, minioSrv.SecretKey, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	defer sts.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)

	ctx := context.Background()
	s, err := New(ctx, Options{
		Bucket: minioSrv.Bucket, Prefix: testPrefix(t), Endpoint: minioSrv.Endpoint, ForcePathStyle: true,
		RoleARN: roleARN, Getenv: githubEnv(gh),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := s.Put(ctx, k, strings.NewReader("via the role")); err != nil {
			t.Fatalf("Put with the assumed role: %v", err)
		}
	}
	if got := storagetest.MustGet(t, s, "a"); string(got) != "via the role" {
		t.Errorf("Get = %q", got)
	}
	if n := stsCalls.Load(); n != 1 {
		t.Errorf("%d STS calls for several requests, want 1 (credentials cached)", n)
	}
}

func TestRoleErrors(t *testing.T) {
	isolateAWSConfig(t)
	ctx := context.Background()

	// No OIDC variables: New says what the job lacks.
	_, err := New(ctx, Options{Bucket: "bkt", Region: "eu-west-1", RoleARN: roleARN, Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "id-token: write") {
		t.Errorf("New with a role and no OIDC variables: err = %v, want a hint about id-token: write", err)
	}

	// GitHub refuses the token: the request's error says why, without
	// the request token.
	gh := fakeGitHub(t, http.StatusForbidden)
	s, err := New(ctx, Options{Bucket: "bkt", Region: "eu-west-1", Endpoint: "http://127.0.0.1:1", RoleARN: roleARN, Getenv: githubEnv(gh)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "x")
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "id-token: write") {
		t.Errorf("Get with the token refused: err = %v, want HTTP 403 and a hint", err)
	}
	if err != nil && strings.Contains(err.Error(), requestToken) {
		t.Errorf("the error holds the request token: %v", err)
	}
}

func TestErrorsHoldNoCredentials(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	const secret = "wrong-secret-5f8e2a9c"
	s, err := New(ctx, Options{Bucket: srv.Bucket, Endpoint: srv.Endpoint, ForcePathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, "k", strings.NewReader("x"))
	var se *storage.Error
	if !errors.As(err, &se) || se.Hint == "" {
		t.Errorf("Put with a wrong secret: err = %v, want a *storage.Error with a hint", err)
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("the error holds the secret: %v", err)
	}
	t.Logf("wrong secret: %v", err)

	// A missing bucket is a configuration error, not a missing object.
	s, err = New(ctx, Options{Bucket: "no-such-bucket", Endpoint: srv.Endpoint, ForcePathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "k")
	if err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "no such bucket") {
		t.Errorf("Get from a missing bucket: err = %v, want an error with the hint, not ErrNotFound", err)
	}
	t.Logf("missing bucket: %v", err)
}
