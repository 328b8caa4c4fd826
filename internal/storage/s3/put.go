package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pgfleet/pgfleet/internal/storage"
)

// Why a multipart loop of our own: a dump's length is unknown until it
// ends, and S3 allows 10,000 parts. feature/s3/transfermanager (v0.5.4, its
// UploadObject read at that version) only sizes parts from a known length
// (initSize: a Seeker, or ContentLength); for a plain reader PartSizeBytes
// stays fixed (8 MiB by default, so a stream stops near 80 GB with
// "exceeded total allowed MaxUploadParts"), and it preallocates
// Concurrency+1 buffers of that size (5+1 by default) besides reading the
// first 16 MiB with io.ReadAll. feature/s3/manager is deprecated and fixed
// the same way. A fixed part big enough for 1 TB (100 MB) would cost 600 MB
// for every tenant, however small its dump. Here parts grow with the
// stream instead, and abort on a context of our own.

// partsPerDoubling is how many parts share a size before it doubles.
const partsPerDoubling = 1000

// partSchedule sizes the parts of one upload: part i (from 0) is first <<
// (i / every) bytes, capped at MaxPartSize. With every = 1,000 the 10,000
// parts come in ten sizes, first to 512×first, and hold first × 1,000 ×
// 1,023 bytes: 5.36 TB from a 5 MiB first part, 8.58 TB (7.8 TiB, past S3's
// 5 TiB object limit) from the default 8 MiB. Past the first 1,000 parts a
// part is 1/2,000 to 1/1,000 of what was streamed before it, so memory grows
// with the stream:
// from 8 MiB, parts are 8 MiB up to 7.8 GiB streamed, 64 MiB up to 117 GiB,
// 512 MiB at 1 TB.
type partSchedule struct {
	first int64
	every int
}

func (p partSchedule) size(i int) int64 {
	shift := i / p.every
	if shift >= 33 || p.first<<shift > MaxPartSize {
		return MaxPartSize
	}
	return p.first << shift
}

// capacity is how many bytes MaxParts parts hold.
func (p partSchedule) capacity() int64 {
	var n int64
	for i := range MaxParts {
		n += p.size(i)
	}
	return n
}

// chunkSize is the unit of part buffers: a part is a list of chunks, so
// buffers are reused as parts grow instead of left to the collector, and a
// small stream costs only the chunks it fills, not a whole first part.
const chunkSize = 1 << 20

// SerialPartSize is the part size above which parts upload one at a time:
// a stream that long (past about 62 GiB from 8 MiB parts) is bound by
// memory, not by round trips, and one big part in flight keeps an upload
// busy.
const SerialPartSize = 64 << 20

// Put streams r to key. A stream shorter than the first part is one
// PutObject; a longer one is a multipart upload whose parts grow (see
// partSchedule), with at most Concurrency parts uploading while the next
// is read, and one at a time once parts pass SerialPartSize.
//
// Memory: part buffers of at most (Concurrency+1) × the current part size
// while parts are at most SerialPartSize, 2 × the current part size above
// it (rounded up to chunkSize), plus the SDK's small per-request overhead.
// Buffers are 1 MiB chunks kept in a pool for the whole Put, so when the
// part size doubles the old chunks serve the new parts: the bound holds
// without waiting for the collector.
//
// On any failure (r's error, ctx cancelled, a part refused) the parts
// still uploading are cancelled and waited for, then the upload is aborted
// on a context of its own (context.WithoutCancel(ctx), AbortTimeout),
// retried while the store is unreachable. If the abort still fails (the
// store stayed down for AbortTimeout), the upload stays pending: the error
// says so and names it, and Pending and Abort clean it up later.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := storage.CheckKey(key); err != nil {
		return 0, s.fail("put", key, err)
	}
	n, err := s.put(ctx, s.prefix+key, r)
	if err != nil {
		return 0, s.fail("put", key, err)
	}
	return n, nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader) (int64, error) {
	u := &upload{s: s, key: key, src: &ctxReader{ctx: ctx, r: r}, slots: make(chan struct{}, s.concurrency)}
	first, eof, err := u.readPart(s.sched.size(0))
	if err != nil {
		return 0, err
	}
	if eof {
		defer u.release(first)
		lockMode, lockUntil := s.lockHeaders()
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &key,
			Body: first.reader(), ContentLength: aws.Int64(first.n), ContentMD5: s.contentMD5(first),
			ServerSideEncryption: s.sse, SSEKMSKeyId: s.kmsKey(), StorageClass: s.storageClass,
			ObjectLockMode: lockMode, ObjectLockRetainUntilDate: lockUntil,
		})
		if err != nil {
			return 0, err
		}
		return first.n, nil
	}
	return u.multipart(ctx, first)
}

func (s *Store) kmsKey() *string {
	if s.kmsKeyID == "" {
		return nil
	}
	return &s.kmsKeyID
}

// upload is one Put in progress.
type upload struct {
	s   *Store
	key string
	src *ctxReader
	id  string // multipart upload id

	wg    sync.WaitGroup
	slots chan struct{} // one per part uploading

	mu      sync.Mutex
	partErr error // the first part's failure
	parts   []types.CompletedPart
	free    [][]byte // chunks to reuse
}

// part is n bytes held in chunks.
type part struct {
	chunks [][]byte
	n      int64
}

func (p part) reader() io.ReadSeeker { return &chunkReader{chunks: p.chunks, n: p.n} }

// readPart reads up to size bytes into chunks from the pool. eof reports
// that the stream ended within them (the part may then be empty).
func (u *upload) readPart(size int64) (p part, eof bool, err error) {
	for p.n < size {
		c := u.chunk()
		want := min(int64(len(c)), size-p.n)
		k, err := io.ReadFull(u.src, c[:want])
		if k > 0 {
			p.chunks = append(p.chunks, c)
			p.n += int64(k)
		} else {
			u.releaseChunk(c)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return p, true, nil
		case err != nil:
			u.release(p)
			return part{}, false, u.src.wrap(err)
		}
	}
	return p, false, nil
}

func (u *upload) chunk() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if k := len(u.free); k > 0 {
		c := u.free[k-1]
		u.free = u.free[:k-1]
		return c
	}
	return make([]byte, chunkSize)
}

func (u *upload) releaseChunk(c []byte) {
	u.mu.Lock()
	u.free = append(u.free, c)
	u.mu.Unlock()
}

func (u *upload) release(p part) {
	u.mu.Lock()
	u.free = append(u.free, p.chunks...)
	u.mu.Unlock()
}

func (u *upload) multipart(ctx context.Context, first part) (int64, error) {
	s := u.s
	// The lock goes on the upload; each part carries its Content-MD5.
	lockMode, lockUntil := s.lockHeaders()
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &s.bucket, Key: &u.key,
		ServerSideEncryption: s.sse, SSEKMSKeyId: s.kmsKey(), StorageClass: s.storageClass,
		ObjectLockMode: lockMode, ObjectLockRetainUntilDate: lockUntil,
	})
	if err != nil {
		u.release(first)
		return 0, fmt.Errorf("start multipart upload: %w", err)
	}
	u.id = aws.ToString(out.UploadId)

	// Parts upload on partsCtx, cancelled by the first failure, which also
	// stops the reading between two reads.
	partsCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	u.src.ctx = partsCtx

	total, readErr := u.send(partsCtx, first, cancel)
	if readErr != nil {
		cancel(readErr)
	}
	u.wg.Wait()

	// The caller's cancellation first; then the reading's error, which
	// is a part's failure when that stopped the reading, and otherwise
	// the reader's own (the parts it cancelled fail with less to say).
	switch {
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	case readErr != nil:
		err = readErr
	default:
		err = u.partErr
	}
	if err == nil {
		err = u.complete(ctx)
		if err != nil && u.completedAnyway(ctx, total) {
			return total, nil
		}
	}
	if err != nil {
		if abortErr := u.abort(ctx); abortErr != nil {
			return 0, fmt.Errorf("%w; and aborting the multipart upload failed too, so it stays pending (upload id %s) until a clean-up aborts it: %v", err, u.id, abortErr)
		}
		return 0, err
	}
	return total, nil
}

// send uploads first, then reads and uploads parts until the stream ends
// or something fails. It returns the bytes read and the reading's error.
func (u *upload) send(ctx context.Context, p part, cancel context.CancelCauseFunc) (int64, error) {
	var total int64
	last := false
	for i := 0; ; i++ {
		if i == MaxParts {
			u.release(p)
			return total, fmt.Errorf("the stream is longer than %d parts hold (%d bytes)", MaxParts, u.s.sched.capacity())
		}
		// A big part takes every slot: it uploads alone.
		weight := 1
		if p.n > u.s.serialAbove {
			weight = cap(u.slots)
		}
		for range weight {
			select {
			case u.slots <- struct{}{}:
			case <-ctx.Done():
				u.release(p)
				return total, context.Cause(ctx)
			}
		}
		u.wg.Add(1)
		go u.uploadPart(ctx, int32(i+1), p, weight, cancel)
		total += p.n
		if last {
			return total, nil
		}
		var err error
		if p, last, err = u.readPart(u.s.sched.size(i + 1)); err != nil {
			return total, err
		}
		if last && p.n == 0 {
			return total, nil
		}
	}
}

func (u *upload) uploadPart(ctx context.Context, num int32, p part, weight int, cancel context.CancelCauseFunc) {
	defer u.wg.Done()
	defer func() {
		for range weight {
			<-u.slots
		}
	}()
	out, err := u.s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &u.s.bucket, Key: &u.key, UploadId: &u.id,
		PartNumber: aws.Int32(num), Body: p.reader(), ContentLength: aws.Int64(p.n), ContentMD5: u.s.contentMD5(p),
	})
	u.release(p)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		// Keep the first real failure; parts cancelled because of it
		// fail too, with less to say.
		if u.partErr == nil || (isCancellation(u.partErr) && !isCancellation(err)) {
			u.partErr = fmt.Errorf("upload part %d: %w", num, err)
		}
		cancel(u.partErr)
		return
	}
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
}

func isCancellation(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// chunkReader reads n bytes spread over chunks, and seeks (the SDK rewinds
// a body to sign it and to retry).
type chunkReader struct {
	chunks [][]byte
	n      int64
	off    int64
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	c := r.chunks[r.off/chunkSize][r.off%chunkSize:]
	c = c[:min(int64(len(c)), r.n-r.off)]
	k := copy(p, c)
	r.off += int64(k)
	return k, nil
}

func (r *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.n
	default:
		return 0, errors.New("chunkReader.Seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("chunkReader.Seek: negative position")
	}
	r.off = offset
	return offset, nil
}

func (u *upload) complete(ctx context.Context) error {
	sort.Slice(u.parts, func(i, j int) bool { return *u.parts[i].PartNumber < *u.parts[j].PartNumber })
	_, err := u.s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.s.bucket, Key: &u.key, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// completedAnyway reports whether a CompleteMultipartUpload that failed on
// our side (ctx cancelled as the answer came, a lost connection) went
// through on S3's: the upload is gone and the object has every byte.
func (u *upload) completedAnyway(ctx context.Context, total int64) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.s.abortTimeout)
	defer cancel()
	_, err := u.s.client.ListParts(ctx, &s3.ListPartsInput{Bucket: &u.s.bucket, Key: &u.key, UploadId: &u.id, MaxParts: aws.Int32(1)})
	if !isNoSuchUpload(err) {
		return false
	}
	head, err := u.s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.s.bucket, Key: &u.key})
	return err == nil && aws.ToInt64(head.ContentLength) == total
}

// abort aborts the upload on a context of its own, retrying while the
// store is unreachable or failing, for up to AbortTimeout. An upload that
// is already gone counts as aborted.
func (u *upload) abort(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.s.abortTimeout)
	defer cancel()
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.s.bucket, Key: &u.key, UploadId: &u.id})
		if err == nil || isNoSuchUpload(err) {
			return nil
		}
		if u.s.abortRetry != nil {
			u.s.abortRetry(attempt, err)
		}
		if permanent(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// permanent reports whether err is S3 refusing the request (a 4xx other
// than a timeout or throttling), which retrying will not change.
func permanent(err error) bool {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	code := re.HTTPStatusCode()
	return code >= 400 && code < 500 && code != 408 && code != 429
}

// ctxReader stops reading at the first Read after ctx is done, with ctx's
// cause. A Read that blocks is not interrupted: the caller cancels whatever
// feeds r (pg_dump) along with ctx.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// errStopped marks errors that come from ctx, not from r.
type errStopped struct{ err error }

func (e errStopped) Error() string { return e.err.Error() }
func (e errStopped) Unwrap() error { return e.err }

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, errStopped{context.Cause(c.ctx)}
	}
	return c.r.Read(p)
}

// wrap labels an error of r as the reader's, leaving ctx's cause as is.
func (c *ctxReader) wrap(err error) error {
	var stopped errStopped
	if errors.As(err, &stopped) {
		return stopped.err
	}
	return fmt.Errorf("read: %w", err)
}
