// Package minio runs a throwaway MinIO server (real S3) for tests and the
// demo.
//
// The server binary is $PGFLEET_MINIO when set, else
// $HOME/.cache/pgfleet/bin/minio, built there on first use with
//
//	GOBIN=$HOME/.cache/pgfleet/bin go install github.com/minio/minio@<Version>
//
// (scripts/ensure-minio does the same, so CI and make can build it before
// any test's timeout starts; a build takes a few minutes on 2 cores).
//
// A server listens on 127.0.0.1 only, on free ports, with a random root
// user and password, keeps its data in a new temp folder, and has one
// bucket. Stop kills it and keeps the folder and ports, Restart brings it
// back on both; Close kills it and removes the folder. In case the whole
// test process is killed, Start also launches a tiny shell watchdog in its
// own session that kills the server and removes the folder once the process
// is gone.
package minio

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pgfleet/pgfleet/internal/testenv/freeport"
)

// Module and Version are what the binary is built from.
const (
	Module  = "github.com/minio/minio"
	Version = "v0.0.0-20260212201848-7aac2a2c5b7c"
)

// Region is the region the server answers for (MinIO's default).
const Region = "us-east-1"

// BuildTimeout bounds building the binary when it is missing.
const BuildTimeout = 30 * time.Minute

// Options configures Start. The zero value is usable.
type Options struct {
	// Bucket is created once the server is up. Default "pgfleet".
	Bucket string
	// Binary is the minio executable. Default: Binary's answer, built by
	// EnsureBinary when missing.
	Binary string
}

// Server is a running (or stopped) MinIO server. Its methods are safe for
// concurrent use. AccessKey and SecretKey are credentials: never log them.
type Server struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Bucket    string

	binary      string
	dir         string // dir/data is MinIO's drive, dir/minio.log its output
	port        int
	consolePort int
	watchdog    *exec.Cmd

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	closed bool
}

// Binary returns the path of the minio executable to use: $PGFLEET_MINIO if
// set, else $HOME/.cache/pgfleet/bin/minio. It does not check that it exists.
func Binary() (string, error) {
	if p := os.Getenv("PGFLEET_MINIO"); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("minio: no home directory to cache the binary in (set PGFLEET_MINIO): %w", err)
	}
	return filepath.Join(home, ".cache", "pgfleet", "bin", "minio"), nil
}

// EnsureBinary returns Binary's path, building the binary there with `go
// install` first when it is missing (under a file lock, so parallel test
// binaries build it once). A missing $PGFLEET_MINIO is an error, not built.
func EnsureBinary(ctx context.Context) (string, error) {
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	if isExecutable(bin) {
		return bin, nil
	}
	if os.Getenv("PGFLEET_MINIO") != "" {
		return "", fmt.Errorf("minio: PGFLEET_MINIO=%s is not an executable file", bin)
	}
	binDir := filepath.Dir(bin)
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("minio: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(binDir, ".minio-build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("minio: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("minio: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(bin) { // built by whoever held the lock
		return bin, nil
	}

	// Build into a folder of its own and rename, so nobody ever runs a
	// half-copied binary.
	stage, err := os.MkdirTemp(binDir, ".minio-build-")
	if err != nil {
		return "", fmt.Errorf("minio: %w", err)
	}
	defer os.RemoveAll(stage)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("minio: %s is missing and the go command to build it is not on PATH (run scripts/ensure-minio, or set PGFLEET_MINIO)", bin)
	}
	ctx, cancel := context.WithTimeout(ctx, BuildTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, goCmd, "install", Module+"@"+Version)
	cmd.Env = append(os.Environ(), "GOBIN="+stage)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	fmt.Fprintf(os.Stderr, "minio: building %s (go install %s@%s), a few minutes the first time\n", bin, Module, Version)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("minio: go install %s@%s: %w\n%s", Module, Version, err, tail(out.Bytes(), 4000))
	}
	if err := os.Rename(filepath.Join(stage, "minio"), bin); err != nil {
		return "", fmt.Errorf("minio: %w", err)
	}
	fmt.Fprintf(os.Stderr, "minio: built %s in %s\n", bin, time.Since(start).Round(time.Second))
	return bin, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start builds the binary if needed, starts a server and waits until it
// serves requests and its bucket exists. On failure everything it created
// is removed and the error includes the tail of the server's output.
func Start(ctx context.Context, o Options) (s *Server, err error) {
	if o.Bucket == "" {
		o.Bucket = "pgfleet"
	}
	if o.Binary == "" {
		if o.Binary, err = EnsureBinary(ctx); err != nil {
			return nil, err
		}
	}
	s = &Server{binary: o.Binary, Bucket: o.Bucket, AccessKey: "pgfleet-" + randomHex(6), SecretKey: randomHex(20)}
	if s.dir, err = os.MkdirTemp("", "pgfleet-minio-"); err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if err = s.startWatchdog(); err != nil {
		return s, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	// A free port found by listening can be taken by someone else before
	// MinIO binds it: try a few pairs.
	for attempt := 1; ; attempt++ {
		if s.port, err = freeport.Get(); err != nil {
			return s, fmt.Errorf("minio: %w", err)
		}
		if s.consolePort, err = freeport.Get(); err != nil {
			return s, fmt.Errorf("minio: %w", err)
		}
		s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.port)
		if err = s.start(ctx); err == nil || attempt == 3 || !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		return s, err
	}
	if _, err = s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		return s, fmt.Errorf("minio: create bucket %s: %w", s.Bucket, err)
	}
	return s, nil
}

// CreateBucket creates another bucket on the server. With objectLock it
// is created with Object Lock enabled, which also turns versioning on (S3
// allows that only when a bucket is created).
func (s *Server) CreateBucket(ctx context.Context, name string, objectLock bool) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if objectLock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := s.Client().CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("minio: create bucket %s: %w", name, err)
	}
	return nil
}

// StartForTest starts a server for tb and closes it in tb.Cleanup. It fails
// tb (never skips) when the server cannot be built or started.
func StartForTest(tb testing.TB) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout+2*time.Minute)
	defer cancel()
	if _, err := EnsureBinary(ctx); err != nil {
		tb.Fatal(err)
	}
	s, err := Start(ctx, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// Client is an S3 client for the server, as root, with path-style
// addressing and checksums only where S3 requires them.
func (s *Server) Client() *s3.Client { return s.ClientAt(s.Endpoint) }

// ClientAt is Client reaching the server through endpoint (a latency
// proxy in front of it, in the benchmarks).
func (s *Server) ClientAt(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     Region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Dir is the folder holding the server's data (Dir()/data) and output
// (Dir()/minio.log).
func (s *Server) Dir() string { return s.dir }

// PID is the server process's id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

var errExited = errors.New("minio exited")

// start launches the server process on s's ports and data folder and waits
// until /minio/health/live answers 200 and the object layer answers.
func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("minio: server is closed")
	}
	if s.cmd != nil {
		return errors.New("minio: server is already running")
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("minio: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(s.binary, "server",
		"--address", "127.0.0.1:"+strconv.Itoa(s.port),
		"--console-address", "127.0.0.1:"+strconv.Itoa(s.consolePort),
		"--certs-dir", filepath.Join(s.dir, "certs"),
		filepath.Join(s.dir, "data"))
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir,
		"MINIO_ROOT_USER=" + s.AccessKey,
		"MINIO_ROOT_PASSWORD=" + s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on",
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("minio: start %s: %w", s.binary, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	os.WriteFile(s.pidPath(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)

	if err := s.waitReady(ctx, exited); err != nil {
		s.kill()
		return fmt.Errorf("minio: %w\nserver output:\n%s", err, s.logTail())
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	ready := false
	for {
		if !ready {
			resp, err := client.Get(s.Endpoint + "/minio/health/live")
			if err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
		}
		if ready {
			// Live answers before the drive is set up; a bucket listing
			// needs the object layer.
			_, err := s.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
			if err == nil {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%w before it was ready", errExited)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills the server (SIGKILL: a crash, not a shutdown) and waits for it
// to exit. The data folder and ports are kept for Restart. Stopping a
// stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
	return nil
}

// kill stops the process; s.mu is held.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.exited = nil, nil
	os.Remove(s.pidPath())
}

// Restart starts the server again on the same data folder and ports,
// stopping it first if it runs, and waits until it is ready.
func (s *Server) Restart(ctx context.Context) error {
	s.Stop()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	return s.start(ctx)
}

// Close kills the server and removes its folder. It is safe to call more
// than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.kill()
	if s.watchdog != nil {
		s.watchdog.Process.Kill()
		s.watchdog.Wait()
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("minio: remove %s: %w", s.dir, err)
	}
	return nil
}

func (s *Server) logPath() string { return filepath.Join(s.dir, "minio.log") }
func (s *Server) pidPath() string { return filepath.Join(s.dir, "minio.pid") }

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	return tail(b, 3000)
}

// watchdogScript waits for process $1 to die, then kills the server whose
// pid is in $2 and removes the folder $3.
const watchdogScript = `parent=$1 pidfile=$2 dir=$3
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
if [ -f "$pidfile" ]; then kill -9 "$(cat "$pidfile")" 2>/dev/null; sleep 1; fi
rm -rf "$dir"
`

func (s *Server) startWatchdog() error {
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "minio-watchdog",
		strconv.Itoa(os.Getpid()), s.pidPath(), s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("minio: start watchdog: %w", err)
	}
	s.watchdog = cmd
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
