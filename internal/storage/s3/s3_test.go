package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/storagetest"
	"github.com/pgfleet/pgfleet/internal/testenv/minio"
)

// shared is the MinIO server of the tests that leave it running; tests
// that stop it start their own.
var (
	sharedOnce sync.Once
	shared     *minio.Server
	sharedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	os.Exit(code)
}

func sharedServer(t *testing.T) *minio.Server {
	t.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), minio.BuildTimeout)
		defer cancel()
		shared, sharedErr = minio.Start(ctx, minio.Options{})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// testPartSize is the first part size in tests: S3's minimum, to keep
// multipart uploads small.
const testPartSize = MinPartSize

// newStore opens a store on srv with a recorder in the way.
func newStore(t *testing.T, srv *minio.Server, rec *recorder, o Options) *Store {
	t.Helper()
	if o.Bucket == "" {
		o.Bucket = srv.Bucket
	}
	o.Endpoint = srv.Endpoint
	o.ForcePathStyle = true
	o.AccessKeyID, o.SecretAccessKey = srv.AccessKey, srv.SecretKey
	if rec != nil {
		o.HTTPClient = &http.Client{Transport: rec}
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testPrefix is a prefix of the bucket no other test uses.
func testPrefix(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	return regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-") + "-" + hex.EncodeToString(b)
}

func TestStore(t *testing.T) {
	srv := sharedServer(t)
	storagetest.Run(t, storagetest.Harness{
		LargeSize: testPartSize,
		Setup: func(t *testing.T) storagetest.Env {
			base := testPrefix(t)
			rec := newRecorder()
			return storagetest.Env{
				Open: func(prefix string) storage.Store {
					s := newStore(t, srv, rec, Options{Prefix: base + "/" + prefix, PartSize: testPartSize})
					s.sched.every = 2 // parts grow within the tests' small streams
					return s
				},
				Orphan: func(st storage.Store, key string) {
					s := st.(*Store)
					_, err := s.client.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{
						Bucket: &s.bucket, Key: aws.String(s.prefix + key),
					})
					if err != nil {
						t.Fatal(err)
					}
				},
				Uploads: func() (int, int) {
					rec.mu.Lock()
					defer rec.mu.Unlock()
					return rec.started, rec.aborted
				},
			}
		},
	})
}

func TestPartSchedule(t *testing.T) {
	const tb = 1_000_000_000_000
	for _, first := range []int64{MinPartSize, DefaultPartSize, 64 << 20, MaxPartSize} {
		p := partSchedule{first: first, every: partsPerDoubling}
		prev := int64(0)
		for i := range MaxParts {
			sz := p.size(i)
			if sz > MaxPartSize || sz < MinPartSize || sz < prev {
				t.Fatalf("first %d: part %d is %d bytes (previous %d): want %d..%d, never shrinking", first, i, sz, prev, MinPartSize, MaxPartSize)
			}
			prev = sz
		}
		c := p.capacity()
		if c < 5*tb {
			t.Errorf("first %d: %d parts hold %d bytes, want more than 5 TB", first, MaxParts, c)
		}
		t.Logf("first part %4d MiB: %d parts hold %.2f TB (%.2f TiB), largest part %d MiB", first>>20, MaxParts, float64(c)/tb, float64(c)/(1<<40), prev>>20)
	}
	// What the default costs in memory as a stream grows.
	p := partSchedule{first: DefaultPartSize, every: partsPerDoubling}
	for _, size := range []int64{1 << 30, 10 << 30, 100 << 30, tb, 5 * tb} {
		var sum int64
		i := 0
		for ; sum < size; i++ {
			sum += p.size(i)
		}
		part := p.size(i - 1)
		t.Logf("a %7.1f GiB stream: %5d parts, part size then %4d MiB, part buffers at most (%d+1) x %d MiB = %d MiB",
			float64(size)/(1<<30), i, part>>20, DefaultConcurrency, part>>20, int64(DefaultConcurrency+1)*part>>20)
	}
}

func TestMultipartPartsGrow(t *testing.T) {
	srv := sharedServer(t)
	rec := newRecorder()
	s := newStore(t, srv, rec, Options{Prefix: testPrefix(t), PartSize: testPartSize})
	s.sched.every = 2
	const M = 1 << 20
	size := int64(5*M + 5*M + 10*M + 10*M + 20*M + 3*M)
	n, err := s.Put(context.Background(), "grow.dump", storagetest.NewStream(11, size))
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Errorf("Put = %d, want %d", n, size)
	}
	want := []int64{5 * M, 5 * M, 10 * M, 10 * M, 20 * M, 3 * M}
	got := rec.partSizes()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("part sizes = %v, want %v", got, want)
	}
	if rec.maxInflight > s.concurrency {
		t.Errorf("%d parts uploaded at once, Concurrency is %d", rec.maxInflight, s.concurrency)
	}
	storagetest.AssertSame(t, s, "grow.dump", 11, size)
	storagetest.AssertNoPending(t, s, "")
	t.Logf("parts %v, at most %d at once", got, rec.maxInflight)
}

// Parts above SerialPartSize upload one at a time: memory is then two
// parts, not Concurrency+1.
func TestBigPartsUploadOneAtATime(t *testing.T) {
	srv := sharedServer(t)
	rec := newRecorder()
	s := newStore(t, srv, rec, Options{Prefix: testPrefix(t), PartSize: testPartSize})
	s.sched.every = 2
	s.serialAbove = testPartSize // so 10 and 20 MiB parts are "big" here
	rec.mu.Lock()
	rec.bigSize = testPartSize
	rec.mu.Unlock()
	const M = 1 << 20
	size := int64(5*M + 5*M + 10*M + 10*M + 20*M + 3*M)
	if _, err := s.Put(context.Background(), "serial.dump", storagetest.NewStream(12, size)); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	overlap, most := rec.bigOverlap, rec.maxInflight
	rec.mu.Unlock()
	if overlap || most > s.concurrency {
		t.Fatalf("a part above serialAbove uploaded beside another (overlap %v, at most %d at once)", overlap, most)
	}
	storagetest.AssertSame(t, s, "serial.dump", 12, size)
}

// TestServerStoppedMidUpload crashes MinIO while a multipart upload is
// under way.
func TestServerStoppedMidUpload(t *testing.T) {
	ctx := context.Background()
	const size = 40 << 20

	// The store stays down through the abort's retries: Put fails and
	// says the upload stays pending; once the store is back, Pending
	// finds it and Abort removes it.
	t.Run("DownThroughAbort", func(t *testing.T) {
		srv := minio.StartForTest(t)
		s := newStore(t, srv, nil, Options{Prefix: "p", PartSize: testPartSize, AbortTimeout: time.Second})
		attempts := 0
		s.abortRetry = func(int, error) { attempts++ }
		r := storagetest.HookReader(storagetest.NewStream(12, size), testPartSize+1<<20, func() { srv.Stop() })
		_, putErr := s.Put(ctx, "t/x.dump", r)
		if putErr == nil {
			t.Fatal("Put succeeded with the server stopped")
		}
		t.Logf("Put: %v", putErr)
		if !strings.Contains(putErr.Error(), "stays pending") {
			t.Errorf("Put's error does not say the upload stays pending")
		}
		if attempts == 0 {
			t.Errorf("Put did not try to abort")
		}
		if err := srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		storagetest.AssertAbsent(t, s, "t/x.dump")
		// MinIO lists the uploads of a restarted server only by exact key
		// (see Pending): AWS S3 would find it under "" too.
		if ups, err := s.Pending(ctx, ""); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("after the restart, Pending(\"\") finds %d uploads (MinIO: only by exact key)", len(ups))
		}
		ups, err := s.Pending(ctx, "t/x.dump")
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) != 1 || ups[0].Key != "t/x.dump" {
			t.Fatalf("Pending = %+v, want the one upload Put left", ups)
		}
		if !strings.Contains(putErr.Error(), ups[0].ID) {
			t.Errorf("Put's error does not name upload %s", ups[0].ID)
		}
		if err := s.Abort(ctx, ups[0]); err != nil {
			t.Fatal(err)
		}
		storagetest.AssertNoPending(t, s, "t/x.dump")
	})

	// The store comes back while Put retries the abort: the abort goes
	// through and nothing is left.
	t.Run("BackDuringAbort", func(t *testing.T) {
		srv := minio.StartForTest(t)
		s := newStore(t, srv, nil, Options{Prefix: "p", PartSize: testPartSize})
		restarted := false
		s.abortRetry = func(attempt int, err error) {
			if !restarted {
				restarted = true
				if err := srv.Restart(ctx); err != nil {
					t.Error(err)
				}
			}
		}
		r := storagetest.HookReader(storagetest.NewStream(13, size), testPartSize+1<<20, func() { srv.Stop() })
		_, err := s.Put(ctx, "t/x.dump", r)
		if err == nil {
			t.Fatal("Put succeeded with the server stopped")
		}
		t.Logf("Put: %v", err)
		if !restarted {
			t.Fatal("the first abort attempt succeeded with the server stopped")
		}
		if strings.Contains(err.Error(), "stays pending") {
			t.Errorf("Put's error says the upload stays pending, but the server was back")
		}
		storagetest.AssertAbsent(t, s, "t/x.dump")
		storagetest.AssertNoPending(t, s, "")
	})
}

// recorder counts the multipart requests a store sends.
type recorder struct {
	base http.RoundTripper

	mu                    sync.Mutex
	started, aborted      int
	parts                 map[int]int64 // part number → bytes, of parts S3 accepted
	inflight, maxInflight int
	bigInflight           int   // parts larger than bigSize uploading now
	bigSize               int64 // 0: not tracked
	bigOverlap            bool  // a big part uploaded while another part did
}

func newRecorder() *recorder {
	return &recorder{base: http.DefaultTransport, parts: map[int]int64{}}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	isPart := req.Method == http.MethodPut && q.Has("partNumber") && q.Has("uploadId")
	big := false
	if isPart {
		r.mu.Lock()
		r.inflight++
		r.maxInflight = max(r.maxInflight, r.inflight)
		big = r.bigSize > 0 && req.ContentLength > r.bigSize
		if big {
			r.bigInflight++
		}
		if r.bigInflight > 0 && r.inflight > 1 {
			r.bigOverlap = true
		}
		r.mu.Unlock()
	}
	resp, err := r.base.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if isPart {
		r.inflight--
		if big {
			r.bigInflight--
		}
	}
	if err != nil || resp.StatusCode >= 300 {
		return resp, err
	}
	switch {
	case req.Method == http.MethodPost && q.Has("uploads"):
		r.started++
	case req.Method == http.MethodDelete && q.Has("uploadId"):
		r.aborted++
	case isPart:
		n, _ := strconv.Atoi(q.Get("partNumber"))
		r.parts[n] = req.ContentLength
	}
	return resp, nil
}

func (r *recorder) partSizes() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	sizes := make([]int64, len(r.parts))
	for n, sz := range r.parts {
		sizes[n-1] = sz
	}
	return sizes
}
