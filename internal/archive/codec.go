package archive

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression levels: what compression-level accepts for each codec, and
// the default when it is not given.
const (
	ZstdMinLevel, ZstdMaxLevel, ZstdDefaultLevel = 1, 22, 3
	GzipMinLevel, GzipMaxLevel, GzipDefaultLevel = 1, 9, 6
)

// Memory of the compressors, per stream (see CompressorMemory).
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

// CompressorMemory is about what one stream's compressor holds: per core a
// job's input and output (zstd) or a block's (gzip), plus the window.
func CompressorMemory(c Compression) int64 {
	n := int64(CompressCores())
	switch c {
	case Zstd:
		return n*2*zstdJob + zstdWindow
	case Gzip:
		return n * 2 * 2 * gzipBlock
	}
	return 0
}

// NewCompressor compresses what is written to it into w, on several cores.
// Close flushes it (and does not close w).
func NewCompressor(w io.Writer, c Compression, level int) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderConcurrency(CompressCores()),
			zstd.WithConcurrentBlocks(true),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderCRC(true))
	case Gzip:
		gw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, err
		}
		// Twice as many blocks as cores keeps every core busy while the
		// finished blocks are written in order.
		if err := gw.SetConcurrency(gzipBlock, 2*CompressCores()); err != nil {
			return nil, err
		}
		return gw, nil
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
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
