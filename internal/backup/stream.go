package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/pgtools"
)

// streamed is what one dump stream stored.
type streamed struct {
	ObjectBytes int64  // stored, after compression and encryption
	DumpBytes   int64  // pg_dump's output
	SHA256      string // of the stored bytes
}

// DumpError is pg_dump failing: its exit status and the end of what it
// said.
type DumpError struct {
	Err    error  // from Wait
	Stderr string // its last lines
}

func (e *DumpError) Error() string {
	msg := "pg_dump failed: " + e.Err.Error()
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *DumpError) Unwrap() error { return e.Err }

// stream runs pg_dump and stores its output at key, compressed, encrypted
// and hashed on the way, in bounded memory. pg_dump reads its connection
// from libpq (environment variables only). ready is called once pg_dump
// has exited 0 and before the stream is let end: the object completes only
// when ready returns nil (the row counts of the same snapshot are in).
// On any failure Put discards the upload and nothing is stored.
func (j *Job) stream(parent context.Context, key string, libpq []string, snapshot string, ready func() error, dumped *atomic.Int64) (streamed, error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)

	cmd, stderr := pgtools.Command(ctx, j.o.PgDump.Path, libpq, j.dumpArgs(snapshot)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return streamed{}, err
	}
	growPipe(stdout)
	if err := cmd.Start(); err != nil {
		return streamed{}, fmt.Errorf("start pg_dump: %w", err)
	}

	pr, pw := io.Pipe()
	hash := sha256.New()
	var produceErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := j.produce(&countingReader{r: stdout, n: dumped, total: &j.dumped}, io.MultiWriter(pw, hash))
		if err != nil {
			cancel(err) // stops pg_dump
		}
		waitErr := cmd.Wait()
		if err == nil && waitErr != nil {
			err = &DumpError{Err: waitErr, Stderr: stderr.String()}
		}
		if err == nil && context.Cause(ctx) != nil {
			err = context.Cause(ctx)
		}
		if err == nil {
			err = ready()
		}
		produceErr = err
		if err != nil {
			// Put sees an error instead of the end of the stream, so it
			// discards the upload: no object.
			pw.CloseWithError(err)
			return
		}
		pw.Close()
	}()

	n, putErr := j.o.Store.Put(ctx, key, pr)
	if putErr != nil {
		cancel(putErr)
		pr.CloseWithError(putErr)
	}
	wg.Wait()
	switch {
	case parent.Err() != nil && (produceErr != nil || putErr != nil):
		return streamed{}, fmt.Errorf("stopped mid-dump, nothing stored: %w", context.Cause(parent))
	case produceErr != nil && !errors.Is(produceErr, putErr) && !isStop(produceErr, putErr):
		// pg_dump, the compressor or the row counts failed: that is the
		// cause, whatever Put said after.
		return streamed{}, produceErr
	case putErr != nil:
		return streamed{}, putErr
	}
	return streamed{ObjectBytes: n, DumpBytes: dumped.Load(), SHA256: hex.EncodeToString(hash.Sum(nil))}, nil
}

// isStop reports whether the producer's error only echoes Put's failure
// (the pipe closed under it).
func isStop(produceErr, putErr error) bool {
	return putErr != nil && (errors.Is(produceErr, io.ErrClosedPipe) || strings.Contains(produceErr.Error(), putErr.Error()))
}

// dumpArgs is pg_dump's command line: never a connection string.
func (j *Job) dumpArgs(snapshot string) []string {
	args := []string{"--no-password", "--snapshot=" + snapshot}
	switch j.o.Format {
	case archive.Custom:
		// Uncompressed: pgfleet compresses the stream on several cores.
		args = append(args, "--format=custom", "--compress=0")
	case archive.Plain:
		args = append(args, "--format=plain")
	}
	return append(args, j.o.PgDumpArgs...)
}

// produce copies pg_dump's output through the compressor and the
// encryption into sink.
func (j *Job) produce(src io.Reader, sink io.Writer) error {
	var w io.Writer = sink
	var enc io.WriteCloser
	if len(j.o.Recipients) > 0 {
		var err error
		if enc, err = archive.Encrypt(sink, j.o.Recipients); err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
		w = enc
	}
	comp, err := archive.NewCompressor(w, j.o.Compression, j.o.Level)
	if err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	// A plain Writer: the compressor's ReadFrom would read pg_dump's pipe
	// in its own way; this keeps the counting reader in charge.
	if _, err := io.CopyBuffer(struct{ io.Writer }{comp}, struct{ io.Reader }{src}, make([]byte, 256<<10)); err != nil {
		comp.Close()
		return fmt.Errorf("stream: %w", err)
	}
	if err := comp.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
	}
	return nil
}

// pipeSize is what pg_dump's output pipe is grown to (Linux's default is
// 64 KiB): fewer, larger reads, and pg_dump blocks less often.
const pipeSize = 1 << 20

// growPipe asks Linux for a bigger pipe; where it cannot, the default stays.
func growPipe(r io.Reader) {
	f, ok := r.(*os.File)
	if !ok {
		return
	}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSize, pipeSize)
		})
	}
}

// fSetPipeSize is F_SETPIPE_SZ (linux/fcntl.h).
const fSetPipeSize = 1031

// countingReader counts the bytes read through it, for the tenant and for
// the whole run (the progress lines).
type countingReader struct {
	r     io.Reader
	n     *atomic.Int64
	total *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	c.total.Add(int64(k))
	return k, err
}
