package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Job restores one validated backup.
type Job struct{ o Options }

func (j *Job) Describe() string {
	m := j.o.Manifest
	clean := ""
	if j.o.Clean {
		clean = ", dropping and recreating the backup's objects (restore-clean)"
	}
	return fmt.Sprintf("%s's backup %s from %s (%s, %s, %d tables, %d rows) into %s with %s %s in one transaction%s",
		j.o.Tenant.Name, path.Base(j.o.DumpKey), j.o.Store, m.Format, archive.Stamp(m.StartedAt), len(m.Tables), m.Rows(),
		tenant.HostDB(j.o.TargetURL), path.Base(j.o.Tool.Path), j.o.Tool.Version, clean)
}

func (j *Job) DryRun() bool { return false }

// Source is the one tenant restored; its URL is the target's, so the
// report names the database that was written.
func (j *Job) Source() tenant.Source { return tenant.Static{j.o.Tenant} }

// ErrCorrupt is a backup whose bytes are not those its manifest describes.
var ErrCorrupt = errors.New("the backup does not match its manifest")

// Work streams the backup into pg_restore (custom) or psql (plain) running
// one transaction, then counts every table's rows.
//
// The object is read once: SHA-256 and size are checked as it streams,
// then it is decrypted and decompressed into the restore program's
// standard input. The last byte of the dump is held back until the whole
// object has been read and matches its manifest: pg_restore needs that
// byte (the end of the archive's last block) and psql commits only at the
// end of its input, so neither can commit a backup that has not been
// checked. On a mismatch, a decryption or decompression error, or
// cancellation, the program is killed before its input is closed and the
// server rolls the transaction back. pg_restore reads a custom archive
// from a pipe when, as pg_dump writes it to a pipe, its data blocks come in
// table-of-contents order (which a plain restore follows); so nothing is
// written to disk.
func (j *Job) Work(ctx context.Context, _ tenant.Tenant) (fleet.Status, fleet.Detail, error) {
	m := j.o.Manifest
	d := &Detail{Object: j.o.DumpKey, Manifest: j.o.Backup.Manifest.Key, BackupTime: m.StartedAt, ExpectedRows: m.Rows()}
	libpq, err := pgtools.LibpqEnv(j.o.TargetURL, "pgfleet-restore")
	if err != nil {
		return fleet.Failed, d, err
	}
	begin := time.Now()
	if err := j.restore(ctx, libpq, d); err != nil {
		d.Seconds = time.Since(begin).Seconds()
		return fleet.Failed, d, err
	}
	d.Seconds = time.Since(begin).Seconds()
	d.restored = true

	// Every table of the manifest, counted in the target.
	conn, err := pgconnect.Connect(ctx, j.o.TargetURL, pgconnect.Options{AppName: "pgfleet"})
	if err != nil {
		return fleet.Failed, d, fmt.Errorf("restored, but counting the rows failed: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables := make([]pgtools.Table, len(m.Tables))
	for i, t := range m.Tables {
		tables[i] = pgtools.Table(t)
	}
	if err := pgtools.CountRowsIfPresent(ctx, conn, tables); err != nil {
		return fleet.Failed, d, fmt.Errorf("restored, but counting the rows failed: %w", err)
	}
	var differ []string
	for i, t := range tables {
		c := TableCheck{Table: m.Tables[i].String(), Expected: m.Tables[i].Rows, Restored: t.Rows}
		d.Tables = append(d.Tables, c)
		if t.Rows > 0 {
			d.RestoredRows += t.Rows
		}
		if !c.Match() {
			d.Differing++
			if len(differ) < 5 {
				differ = append(differ, c.describe())
			}
		}
	}
	d.counted = true
	if d.Differing > 0 {
		more := ""
		if d.Differing > len(differ) {
			more = "; …"
		}
		return fleet.Failed, d, fmt.Errorf("restored, but %d of %d tables differ from the manifest: %s%s", d.Differing, len(tables), strings.Join(differ, "; "), more)
	}
	return fleet.Succeeded, d, nil
}

// restore runs the restore program on the checked stream.
func (j *Job) restore(ctx context.Context, libpq []string, d *Detail) error {
	m := j.o.Manifest
	obj, err := j.o.Store.Get(ctx, j.o.DumpKey)
	if err != nil {
		return err
	}
	defer obj.Close()
	hashed := &hashingReader{r: obj, h: sha256.New()}
	var plain io.Reader = hashed
	if m.Encrypted() {
		if plain, err = archive.Decrypt(hashed, j.o.Identities); err != nil {
			return fmt.Errorf("%w: the target was not touched", err)
		}
	}
	dec, err := archive.NewDecompressor(plain, m.Compression)
	if err != nil {
		return fmt.Errorf("decompress: %w: the target was not touched", err)
	}
	defer dec.Close()
	verify := func() error {
		// The whole object, exactly: drain what the decompressor left (a
		// gzip trailer, padding) so the hash covers every byte.
		if _, err := io.Copy(io.Discard, hashed); err != nil {
			return err
		}
		d.Bytes = hashed.n
		d.SHA256 = hex.EncodeToString(hashed.h.Sum(nil))
		if hashed.n != m.Bytes || d.SHA256 != m.SHA256 {
			return fmt.Errorf("%w: it has %d bytes with sha256 %s, the manifest says %d bytes with sha256 %s", ErrCorrupt, hashed.n, d.SHA256, m.Bytes, m.SHA256)
		}
		d.Verified = true
		return nil
	}
	// A stream that breaks (decompression, decryption) is most often a
	// corrupt object: say so when its hash shows it.
	diagnose := func(err error) error {
		if verr := verify(); verr != nil && errors.Is(verr, ErrCorrupt) {
			return verr
		}
		return fmt.Errorf("read the backup: %w", err)
	}
	gate := &heldBack{src: dec, verify: verify, diagnose: diagnose}

	cmd, stderr := pgtools.Command(ctx, j.o.Tool.Path, libpq, j.args()...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", path.Base(j.o.Tool.Path), err)
	}
	_, copyErr := io.CopyBuffer(stdin, gate, make([]byte, 256<<10))
	if gate.err != nil {
		// The stream failed or did not check out: kill the program
		// before its input ends, so it can never commit.
		pgtools.Kill(cmd)
		cmd.Wait()
		if ctx.Err() != nil {
			return fmt.Errorf("stopped, nothing restored (the transaction was rolled back): %w", context.Cause(ctx))
		}
		return fmt.Errorf("%w; nothing was restored: the target is as it was", gate.err)
	}
	stdin.Close()
	waitErr := cmd.Wait()
	if waitErr != nil || copyErr != nil {
		if ctx.Err() != nil {
			if d.Verified {
				// The whole checked backup had gone in: the program may
				// have been committing when it was stopped.
				return fmt.Errorf("stopped while %s was finishing: its one transaction either committed whole or was rolled back (count the target's rows to know): %w", path.Base(j.o.Tool.Path), context.Cause(ctx))
			}
			return fmt.Errorf("stopped, nothing restored (the transaction was rolled back): %w", context.Cause(ctx))
		}
		err := waitErr
		if err == nil {
			err = copyErr
		}
		return fmt.Errorf("%s failed, and its one transaction was rolled back (the target is as it was): %v: %s", path.Base(j.o.Tool.Path), err, stderr.String())
	}
	if !d.Verified {
		// The program ended without reading its whole input: it cannot
		// have restored the checked backup.
		return fmt.Errorf("%s ended before reading the whole backup: %s", path.Base(j.o.Tool.Path), stderr.String())
	}
	return nil
}

// args is the restore program's command line: the connection is in libpq's
// environment; "--dbname=" (empty) makes pg_restore connect with it.
func (j *Job) args() []string {
	if j.o.Manifest.Format == archive.Plain {
		return []string{"--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction", "--file=-"}
	}
	args := []string{"--dbname=", "--no-password", "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error"}
	if j.o.Clean {
		args = append(args, "--clean", "--if-exists")
	}
	return args
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (r *hashingReader) Read(p []byte) (int, error) {
	k, err := r.r.Read(p)
	r.h.Write(p[:k])
	r.n += int64(k)
	return k, err
}

// heldBack reads src but keeps its last byte until src has ended and
// verify passed: a reader downstream cannot see the end of the stream, nor
// its last byte, before the stream is proven good. err is why it stopped,
// when it did not end well.
type heldBack struct {
	src      io.Reader
	verify   func() error
	diagnose func(error) error // explains a failed read
	last     []byte            // the byte held back (0 or 1)
	done     bool              // src ended and verify passed: last may go
	err      error
}

func (h *heldBack) Read(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if h.done {
		if len(h.last) == 0 {
			return 0, io.EOF
		}
		p[0] = h.last[0]
		h.last = nil
		return 1, nil
	}
	for {
		// Read into p after the held byte, then hold back p's new last
		// byte.
		n := copy(p, h.last)
		k, err := h.src.Read(p[n:])
		total := n + k
		if total > 0 {
			h.last = append(h.last[:0], p[total-1])
			total--
		}
		switch {
		case err == io.EOF:
			if verr := h.verify(); verr != nil {
				h.err = verr
				return 0, verr
			}
			h.done = true
			if total > 0 {
				return total, nil
			}
			return h.Read(p)
		case err != nil:
			h.err = h.diagnose(err)
			return 0, h.err
		case total > 0:
			return total, nil
		}
	}
}
