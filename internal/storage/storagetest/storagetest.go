// Package storagetest is the one test body every storage.Store runs (as
// litestream's RunWithReplicaClient and dbmate's testEachURL do): each
// implementation's tests call Run with a Harness that opens its stores.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/internal/storage"
)

// Harness is what Run needs from one implementation.
type Harness struct {
	// LargeSize is a stream size past which Put has started an upload that
	// must be cleaned up on failure (S3: more than the first part, so a
	// multipart upload exists). Streams in the tests go a little beyond it.
	LargeSize int64
	// Setup gives each subtest a destination of its own.
	Setup func(t *testing.T) Env
}

// Env is one subtest's destination.
type Env struct {
	// Open returns a store at sub-path prefix ("", "a", "a/") of the
	// subtest's destination. Stores opened with the same prefix, with or
	// without a trailing slash, see the same objects; a store opened with
	// "" sees the others' objects under "a/".
	Open func(prefix string) storage.Store
	// Orphan leaves an unfinished upload of key in s, made by hand the
	// way a killed run would leave it.
	Orphan func(s storage.Store, key string)
	// Uploads, when set, counts the unfinished uploads stores of this Env
	// started and aborted so far (S3: CreateMultipartUpload and
	// AbortMultipartUpload requests).
	Uploads func() (started, aborted int)
}

// Run runs the shared tests against h.
func Run(t *testing.T, h Harness) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("Large", func(t *testing.T) { testLarge(t, h) })
	t.Run("FailingReader", func(t *testing.T) { testFailingReader(t, h) })
	t.Run("CancelMidPut", func(t *testing.T) { testCancelMidPut(t, h) })
	t.Run("PrefixSlash", func(t *testing.T) { testPrefixSlash(t, h) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, h) })
	t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, h) })
	t.Run("PendingAbort", func(t *testing.T) { testPendingAbort(t, h) })
}

func testRoundTrip(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Setup(t).Open("")
	objs := map[string][]byte{
		"a/b/c.dump": Bytes(1, 100<<10),
		"a/b/d":      Bytes(2, 10),
		"a/bz":       Bytes(3, 1),
		"a/e":        Bytes(4, 1000),
		"b/x":        Bytes(5, 5),
		"empty":      {},
	}
	for k, v := range objs {
		n, err := s.Put(ctx, k, bytes.NewReader(v))
		if err != nil {
			t.Fatalf("Put %s: %v", k, err)
		}
		if n != int64(len(v)) {
			t.Errorf("Put %s = %d bytes, want %d", k, n, len(v))
		}
	}
	for k, v := range objs {
		if got := MustGet(t, s, k); !bytes.Equal(got, v) {
			t.Errorf("Get %s: %d bytes differ from the %d put", k, len(got), len(v))
		}
	}

	list := func(prefix string, want ...string) {
		t.Helper()
		got, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List %q: %v", prefix, err)
		}
		var keys []string
		for _, o := range got {
			keys = append(keys, o.Key)
			if o.Size != int64(len(objs[o.Key])) {
				t.Errorf("List %q: %s has size %d, want %d", prefix, o.Key, o.Size, len(objs[o.Key]))
			}
			if o.LastModified.IsZero() {
				t.Errorf("List %q: %s has no LastModified", prefix, o.Key)
			}
		}
		if !slices.Equal(keys, want) {
			t.Errorf("List %q = %q, want %q", prefix, keys, want)
		}
	}
	list("", "a/b/c.dump", "a/b/d", "a/bz", "a/e", "b/x", "empty")
	list("a/", "a/b/c.dump", "a/b/d", "a/bz", "a/e")
	list("a/b", "a/b/c.dump", "a/b/d", "a/bz") // a prefix of characters, not of folders
	list("a/b/", "a/b/c.dump", "a/b/d")
	list("a/b/c", "a/b/c.dump")
	list("nothing/")

	// Overwrite.
	objs["a/e"] = Bytes(6, 2000)
	if _, err := s.Put(ctx, "a/e", bytes.NewReader(objs["a/e"])); err != nil {
		t.Fatalf("Put over a/e: %v", err)
	}
	if got := MustGet(t, s, "a/e"); !bytes.Equal(got, objs["a/e"]) {
		t.Errorf("Get a/e after overwrite: got %d bytes, want the new %d", len(got), len(objs["a/e"]))
	}

	// Delete, twice.
	for range 2 {
		if err := s.Delete(ctx, "a/e"); err != nil {
			t.Fatalf("Delete a/e: %v", err)
		}
	}
	delete(objs, "a/e")
	if _, err := s.Get(ctx, "a/e"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get a/e after Delete: err = %v, want ErrNotFound", err)
	}
	list("a/", "a/b/c.dump", "a/b/d", "a/bz")
	AssertNoPending(t, s, "")
}

func testLarge(t *testing.T, h Harness) {
	s := h.Setup(t).Open("big")
	size := 2*h.LargeSize + 12345
	n, err := s.Put(context.Background(), "x.dump", NewStream(7, size))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n != size {
		t.Errorf("Put = %d bytes, want %d", n, size)
	}
	AssertSame(t, s, "x.dump", 7, size)
	AssertNoPending(t, s, "")
}

var errBroken = errors.New("the dump broke")

func testFailingReader(t *testing.T, h Harness) {
	for _, size := range []int64{0, 1000, h.LargeSize + 1<<20} {
		env := h.Setup(t)
		s := env.Open("p")
		r := io.MultiReader(NewStream(8, size), ErrReader(errBroken))
		_, err := s.Put(context.Background(), "t/x.dump", r)
		if !errors.Is(err, errBroken) {
			t.Errorf("Put of a reader failing after %d bytes: err = %v, want it to wrap the reader's error", size, err)
		}
		AssertAbsent(t, s, "t/x.dump")
		AssertNoPending(t, s, "")
		assertAllAborted(t, env, size > h.LargeSize)
	}
}

func testCancelMidPut(t *testing.T, h Harness) {
	env := h.Setup(t)
	s := env.Open("p")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The reader cancels ctx once it is past LargeSize and then goes on
	// serving data, as a dump would until the signal reaches it.
	r := &hookReader{r: NewStream(9, 4*h.LargeSize+1<<20), at: h.LargeSize + 1<<20, hook: cancel}
	_, err := s.Put(ctx, "t/x.dump", r)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled mid-stream: err = %v, want context.Canceled", err)
	}
	if !r.fired {
		t.Fatalf("the reader never reached %d bytes", r.at)
	}
	AssertAbsent(t, s, "t/x.dump")
	AssertNoPending(t, s, "")
	assertAllAborted(t, env, true)
}

func testPrefixSlash(t *testing.T, h Harness) {
	ctx := context.Background()
	env := h.Setup(t)
	noSlash, slash, root := env.Open("pre"), env.Open("pre/"), env.Open("")
	data := Bytes(10, 333)
	if _, err := noSlash.Put(ctx, "k", bytes.NewReader(data)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := slash.Put(ctx, "j/k", bytes.NewReader(data)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	for _, s := range []storage.Store{noSlash, slash} {
		if got := MustGet(t, s, "k"); !bytes.Equal(got, data) {
			t.Errorf("%s: Get k: wrong bytes", s)
		}
		if got := Keys(t, s, ""); !slices.Equal(got, []string{"j/k", "k"}) {
			t.Errorf("%s: List = %q, want [j/k k]", s, got)
		}
	}
	if got := Keys(t, root, ""); !slices.Equal(got, []string{"pre/j/k", "pre/k"}) {
		t.Errorf("store at the destination's root: List = %q, want [pre/j/k pre/k]", got)
	}
	if got := MustGet(t, root, "pre/k"); !bytes.Equal(got, data) {
		t.Errorf("store at the destination's root: Get pre/k: wrong bytes")
	}
	if noSlash.String() != slash.String() {
		t.Errorf("String differs with a trailing slash: %q vs %q", noSlash, slash)
	}
}

func testNotFound(t *testing.T, h Harness) {
	s := h.Setup(t).Open("p")
	for _, k := range []string{"nope", "a/nope", "a/b/c/nope.dump"} {
		rc, err := s.Get(context.Background(), k)
		if !errors.Is(err, storage.ErrNotFound) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("Get %s: err = %v, want ErrNotFound", k, err)
		}
	}
}

func testInvalidKeys(t *testing.T, h Harness) {
	ctx := context.Background()
	env := h.Setup(t)
	s := env.Open("p")
	for _, k := range []string{"", "/abs", "../x", "a/../../x", "a//b", "a/./b", "a/", "."} {
		if _, err := s.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put %q: err = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Get %q: err = %v, want ErrInvalidKey", k, err)
		}
		if err := s.Delete(ctx, k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Delete %q: err = %v, want ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"/abs", "../", "a/../", "a//"} {
		if _, err := s.List(ctx, p); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("List %q: err = %v, want ErrInvalidKey", p, err)
		}
		if _, err := s.Pending(ctx, p); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Pending %q: err = %v, want ErrInvalidKey", p, err)
		}
	}
	if got := Keys(t, env.Open(""), ""); len(got) != 0 {
		t.Errorf("after invalid Puts the destination holds %q", got)
	}
}

func testPendingAbort(t *testing.T, h Harness) {
	ctx := context.Background()
	env := h.Setup(t)
	s := env.Open("p")
	if _, err := s.Put(ctx, "t1/done.dump", strings.NewReader("done")); err != nil {
		t.Fatal(err)
	}
	env.Orphan(s, "t1/orphan.dump")

	ups, err := s.Pending(ctx, "")
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	if len(ups) != 1 || ups[0].Key != "t1/orphan.dump" || ups[0].ID == "" || ups[0].Initiated.IsZero() {
		t.Fatalf("Pending = %+v, want one upload of t1/orphan.dump with an ID and a time", ups)
	}
	for prefix, want := range map[string]int{"t1/": 1, "t1/orph": 1, "t2/": 0, "t1/done": 0} {
		got, err := s.Pending(ctx, prefix)
		if err != nil {
			t.Fatalf("Pending %q: %v", prefix, err)
		}
		if len(got) != want {
			t.Errorf("Pending %q = %+v, want %d", prefix, got, want)
		}
	}
	if got := Keys(t, s, ""); !slices.Equal(got, []string{"t1/done.dump"}) {
		t.Errorf("List = %q: an unfinished upload must not be listed", got)
	}
	AssertAbsent(t, s, "t1/orphan.dump")

	for range 2 { // the second finds it gone, which is not an error
		if err := s.Abort(ctx, ups[0]); err != nil {
			t.Fatalf("Abort: %v", err)
		}
	}
	AssertNoPending(t, s, "")
	if got := MustGet(t, s, "t1/done.dump"); string(got) != "done" {
		t.Errorf("Abort touched a complete object: %q", got)
	}
}

func assertAllAborted(t *testing.T, env Env, wantStarted bool) {
	t.Helper()
	if env.Uploads == nil {
		return
	}
	started, aborted := env.Uploads()
	if wantStarted && started == 0 {
		t.Errorf("no unfinished upload was started: the test did not exercise the abort")
	}
	if aborted != started {
		t.Errorf("%d unfinished uploads started, %d aborted", started, aborted)
	}
}

// MustGet reads key whole.
func MustGet(t testing.TB, s storage.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", key, err)
	}
	return b
}

// AssertSame checks that key holds NewStream(seed, size), without holding
// it in memory.
func AssertSame(t testing.TB, s storage.Store, key string, seed uint64, size int64) {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	got, want := sha256.New(), sha256.New()
	n, err := io.Copy(got, rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", key, err)
	}
	io.Copy(want, NewStream(seed, size))
	if n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Errorf("Get %s: %d bytes that differ from the %d put", key, n, size)
	}
}

// AssertAbsent checks that key holds no object and is not listed.
func AssertAbsent(t testing.TB, s storage.Store, key string) {
	t.Helper()
	if rc, err := s.Get(context.Background(), key); !errors.Is(err, storage.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Get %s: err = %v, want ErrNotFound", key, err)
	}
	if keys := Keys(t, s, ""); slices.Contains(keys, key) {
		t.Errorf("List shows %s", key)
	}
}

// AssertNoPending checks that no unfinished upload is left under prefix.
func AssertNoPending(t testing.TB, s storage.Store, prefix string) {
	t.Helper()
	ups, err := s.Pending(context.Background(), prefix)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	if len(ups) != 0 {
		t.Errorf("unfinished uploads left behind: %+v", ups)
	}
}

// Keys lists the keys under prefix.
func Keys(t testing.TB, s storage.Store, prefix string) []string {
	t.Helper()
	objs, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List %q: %v", prefix, err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// Bytes returns n pseudo-random bytes from seed.
func Bytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(NewStream(seed, int64(n)), b)
	return b
}

// NewStream returns size pseudo-random bytes from seed, generated as they
// are read (it holds no more than the caller's buffer).
func NewStream(seed uint64, size int64) io.Reader {
	return &stream{rng: rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}), left: size}
}

type stream struct {
	rng  *rand.ChaCha8
	left int64
}

func (s *stream) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, _ := s.rng.Read(p)
	s.left -= int64(n)
	return n, nil
}

// ErrReader returns a reader whose every Read fails with err.
func ErrReader(err error) io.Reader { return errReader{err} }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// hookReader calls hook once, when the bytes read reach at.
type hookReader struct {
	r     io.Reader
	at    int64
	read  int64
	hook  func()
	fired bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.read += int64(n)
	if !h.fired && h.read >= h.at {
		h.fired = true
		h.hook()
	}
	return n, err
}

// HookReader returns a reader of r that calls hook once, as soon as at
// bytes have been read.
func HookReader(r io.Reader, at int64, hook func()) io.Reader {
	return &hookReader{r: r, at: at, hook: hook}
}
