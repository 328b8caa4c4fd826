package archive

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression levels: what compression-level accepts for each codec, and
// the default when it is not given.
const (
	ZstdMinLevel, ZstdMaxLevel, ZstdDefaultLevel = 1, 22, 1
	GzipMinLevel, GzipMaxLevel, GzipDefaultLevel = 1, 9, 6
)

// Memory of the compressors, per stream.
const (
	// zstdWindow is the zstd window. With concurrent blocks the encoder
	// splits the stream into jobs of 4 windows compressed side by side, so
	// the window sets the memory: 1 MiB gives 4 MiB jobs. The default
	// window (8 MiB) would make 32 MiB jobs, over 100 MB per tenant on 4
	// cores; on dumps the smaller window costs about 1% of ratio.
	zstdWindow = 1 << 20
	zstdJob    = 4 * zstdWindow
	// gzipBlock is pgzip's block: each core compresses one at a time.
	gzipBlock = 1 << 20
	// maxCompressCores caps the cores one stream's compressor uses; the
	// fleet runs several tenants at once anyway.
	maxCompressCores = 4
)

// CompressCores is how many goroutines one stream's compressor runs.
func CompressCores() int { return max(1, min(runtime.GOMAXPROCS(0), maxCompressCores)) }

// parallelAfter is how much of a stream is compressed on one core before
// the compressor turns to several: most tenants are small, and a
// multi-core encoder's job buffers (several MiB) would cost every one of
// them; a big dump gets every core from here on.
const parallelAfter = 16 << 20

// NewCompressor compresses what is written to it into w: on one core for
// the first 16 MiB, then on several (CompressCores). The stream is then two
// zstd frames or two gzip members one after the other, which every zstd
// and gzip decoder reads as one stream. Close flushes it (and does not
// close w).
func NewCompressor(w io.Writer, c Compression, level int) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		return newEscalating(w,
			func(w io.Writer) (io.WriteCloser, error) { return pooledZstdWriter(w, level, false) },
			func(w io.Writer) (io.WriteCloser, error) { return pooledZstdWriter(w, level, true) })
	case Gzip:
		return newEscalating(w,
			func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, level) },
			func(w io.Writer) (io.WriteCloser, error) {
				gw, err := pgzip.NewWriterLevel(w, level)
				if err != nil {
					return nil, err
				}
				// Twice as many blocks as cores keeps every core busy
				// while the finished blocks are written in order.
				if err := gw.SetConcurrency(gzipBlock, 2*CompressCores()); err != nil {
					return nil, err
				}
				return gw, nil
			})
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

// escalating writes through a one-core compressor until parallelAfter
// bytes went in, then closes it (ending its frame) and goes on with a
// multi-core one.
type escalating struct {
	w        io.Writer
	cur      io.WriteCloser
	in       int64
	parallel func(io.Writer) (io.WriteCloser, error)
	upgraded bool
	closed   bool
}

func newEscalating(w io.Writer, single, parallel func(io.Writer) (io.WriteCloser, error)) (io.WriteCloser, error) {
	cur, err := single(w)
	if err != nil {
		return nil, err
	}
	return &escalating{w: w, cur: cur, parallel: parallel, upgraded: CompressCores() == 1}, nil
}

func (e *escalating) Write(p []byte) (int, error) {
	if !e.upgraded && e.in+int64(len(p)) > parallelAfter {
		e.upgraded = true
		if err := e.cur.Close(); err != nil {
			return 0, err
		}
		next, err := e.parallel(e.w)
		if err != nil {
			return 0, err
		}
		e.cur = next
	}
	n, err := e.cur.Write(p)
	e.in += int64(n)
	return n, err
}

func (e *escalating) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	return e.cur.Close()
}

// NewDecompressor reads what r holds, decompressed. Close releases it (and
// does not close r). It decodes on the caller's goroutine, reading r only
// inside Read: once it has returned io.EOF, r is the caller's again.
// Decompression (about 1 GB/s on one core) is never what a restore waits
// for.
func NewDecompressor(r io.Reader, c Compression) (io.ReadCloser, error) {
	switch c {
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			return nil, err
		}
		return zstdReader{d}, nil
	case Gzip:
		return gzip.NewReader(r)
	case None:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

// zstdEncoders keeps finished encoders by level for the next stream: a
// multi-core encoder holds a few MiB of job buffers and tables, and a fleet
// of small tenants would otherwise allocate (and clear) them once per
// tenant. A pool never holds more encoders than streams ran at once.
var zstdEncoders struct {
	sync.Mutex
	free map[zstdKind][]*zstd.Encoder
}

type zstdKind struct {
	level    int
	parallel bool
}

// pooledZstdWriter is a zstd encoder writing to w, from the pool when one
// is free. A parallel one compresses jobs of 4 windows on CompressCores
// goroutines; the other compresses on the caller's.
func pooledZstdWriter(w io.Writer, level int, parallel bool) (io.WriteCloser, error) {
	k := zstdKind{level, parallel}
	zstdEncoders.Lock()
	var enc *zstd.Encoder
	if free := zstdEncoders.free[k]; len(free) > 0 {
		enc = free[len(free)-1]
		zstdEncoders.free[k] = free[:len(free)-1]
	}
	zstdEncoders.Unlock()
	if enc == nil {
		opts := []zstd.EOption{
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderCRC(true),
			zstd.WithEncoderConcurrency(1),
		}
		if parallel {
			opts = append(opts, zstd.WithEncoderConcurrency(CompressCores()), zstd.WithConcurrentBlocks(true))
		}
		var err error
		if enc, err = zstd.NewWriter(nil, opts...); err != nil {
			return nil, err
		}
	}
	enc.Reset(w)
	return &pooledZstd{Encoder: enc, kind: k}, nil
}

// pooledZstd returns its encoder to the pool when it closes cleanly; one
// that failed is dropped.
type pooledZstd struct {
	*zstd.Encoder
	kind zstdKind
	done bool
}

func (p *pooledZstd) Close() error {
	if p.done {
		return nil
	}
	p.done = true
	err := p.Encoder.Close()
	if err == nil {
		p.Encoder.Reset(nil)
		zstdEncoders.Lock()
		if zstdEncoders.free == nil {
			zstdEncoders.free = map[zstdKind][]*zstd.Encoder{}
		}
		zstdEncoders.free[p.kind] = append(zstdEncoders.free[p.kind], p.Encoder)
		zstdEncoders.Unlock()
	}
	return err
}

type zstdReader struct{ *zstd.Decoder }

func (z zstdReader) Close() error { z.Decoder.Close(); return nil }

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// ParseRecipients reads age public keys (age1...), separated by newlines,
// commas or spaces; lines starting with # are comments.
func ParseRecipients(s string) ([]age.Recipient, []string, error) {
	var rs []age.Recipient
	var keys []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			r, err := age.ParseX25519Recipient(f)
			if err != nil {
				if strings.HasPrefix(strings.ToUpper(f), "AGE-SECRET-KEY-") {
					// Never echo any of a secret key pasted in the wrong place.
					return nil, nil, errors.New("an age secret key (AGE-SECRET-KEY-...) was given where a public key belongs: give the public key (age1..., age-keygen -y prints it) and keep the secret key for encryption-identity")
				}
				return nil, nil, fmt.Errorf("%q is not an age public key (age1..., as age-keygen prints it)", cut(f, 20))
			}
			rs = append(rs, r)
			keys = append(keys, f)
		}
	}
	return rs, keys, nil
}

// ParseIdentities reads age secret keys: the whole file age-keygen writes
// (comments ignored) or just the AGE-SECRET-KEY-1... line. Errors never
// quote the input.
func ParseIdentities(s string) ([]age.Identity, error) {
	ids, err := age.ParseIdentities(strings.NewReader(strings.ReplaceAll(s, "\r\n", "\n")))
	if err != nil {
		return nil, errors.New("not an age identity: want the file age-keygen writes, or its AGE-SECRET-KEY-1... line")
	}
	return ids, nil
}

// Encrypt encrypts what is written to it for the recipients into w. Close
// writes the last chunk (and does not close w).
func Encrypt(w io.Writer, recipients []age.Recipient) (io.WriteCloser, error) {
	return age.Encrypt(w, recipients...)
}

// Decrypt reads r decrypted with one of the identities. It reads the header
// at once, so an identity that matches no recipient fails here, before
// anything is restored.
func Decrypt(r io.Reader, ids []age.Identity) (io.Reader, error) {
	d, err := age.Decrypt(r, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, errors.New("decrypt: the encryption identity is not one of the backup's recipients")
		}
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return d, nil
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// DecryptsFor reports whether some identity is the secret key of one of
// the recipients (age1... keys, as ParseRecipients returns them): a check
// before any backup is written that the identity given can read them.
func DecryptsFor(ids []age.Identity, recipients []string) bool {
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			for _, r := range recipients {
				if x.Recipient().String() == r {
					return true
				}
			}
		}
	}
	return false
}
