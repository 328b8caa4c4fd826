// Package recovery restores one backup into one database and proves it came
// back: the object is streamed from the store once, its size and SHA-256
// checked against the manifest as it goes, decrypted and decompressed into
// pg_restore (custom) or psql (plain) running one transaction, and then
// every table's rows are counted and compared with the manifest.
//
// It is the core of `mode: restore` and of backup's restore drill, so the
// two restore a backup the same way; neither mode imports the other.
package recovery

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

	"filippo.io/age"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/storage"
)

// Backup is one backup to restore: its dump object and the manifest read
// for it.
type Backup struct {
	Store    storage.Store
	DumpKey  string
	Manifest *archive.Manifest
}

// Options are how it is restored.
type Options struct {
	Tool       pgtools.Tool // pg_restore (custom) or psql (plain): see FindTool
	Identities []age.Identity
	// Clean makes pg_restore drop and recreate the backup's objects
	// (--clean --if-exists) in its one transaction.
	Clean bool
	// AppName is the restore program's application_name.
	AppName string
}

// Result is what a restore found. Its JSON tags are fields of the report
// (restore's tenant record, the drill's).
type Result struct {
	Bytes        int64        `json:"bytes"` // read from the store
	SHA256       string       `json:"sha256,omitempty"`
	Verified     bool         `json:"sha256_verified"`
	Seconds      float64      `json:"restore_seconds"`
	ExpectedRows int64        `json:"expected_rows"`
	RestoredRows int64        `json:"restored_rows"`
	Differing    int          `json:"tables_differing"`
	Tables       []TableCheck `json:"tables"`

	Restored bool `json:"-"` // the restore program committed
	Counted  bool `json:"-"` // the rows were counted
}

// Matched is the tables whose rows matched the manifest.
func (r *Result) Matched() int { return len(r.Tables) - r.Differing }

// TableCheck is one table's rows, in the manifest and after the restore
// (pgtools.MissingRows, -1, when the table is missing).
type TableCheck struct {
	Table    string `json:"table"`
	Expected int64  `json:"expected"`
	Restored int64  `json:"restored"`
}

// Match reports whether the table came back with its rows.
func (c TableCheck) Match() bool { return c.Expected == c.Restored }

func (c TableCheck) describe() string {
	if c.Restored < 0 {
		return fmt.Sprintf("%s is missing (expected %d rows)", c.Table, c.Expected)
	}
	return fmt.Sprintf("%s has %d rows, expected %d", c.Table, c.Restored, c.Expected)
}

// ErrCorrupt is a backup whose bytes are not those its manifest describes.
var ErrCorrupt = errors.New("the backup does not match its manifest")

// ToolName is the program that restores a dump of format f.
func ToolName(f archive.Format) string {
	if f == archive.Plain {
		return "psql"
	}
	return "pg_restore"
}

// FindTool finds the program that restores format f beside pg_dump.
func FindTool(ctx context.Context, pgDump pgtools.Tool, f archive.Format) (pgtools.Tool, error) {
	name := ToolName(f)
	t, err := pgtools.FindTool(ctx, pgDump.Sibling(name))
	if err != nil {
		return t, fmt.Errorf("restore needs %s beside pg_dump: %v", name, err)
	}
	return t, nil
}

// CanRead fails when tool cannot read the backup: pg_restore refuses an
// archive written by a newer pg_dump.
func CanRead(tool pgtools.Tool, m *archive.Manifest) error {
	if dm := pgtools.ServerMajor(m.PgDumpVersion); m.Format == archive.Custom && tool.Major < dm {
		return fmt.Errorf("pg_restore %s cannot read an archive written by pg_dump %s: use pg_restore %d or later (pg-dump-path names the pg_dump beside it)", tool.Version, m.PgDumpVersion, dm)
	}
	return nil
}

// Restore streams the backup into the restore program running one
// transaction, then counts every table's rows into res (which holds what
// was found so far when it fails).
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
func Restore(ctx context.Context, b Backup, targetURL string, o Options, res *Result) error {
	m := b.Manifest
	res.ExpectedRows = m.Rows()
	libpq, err := pgtools.LibpqEnv(targetURL, o.AppName)
	if err != nil {
		return err
	}
	begin := time.Now()
	err = run(ctx, b, o, libpq, res)
	res.Seconds = time.Since(begin).Seconds()
	if err != nil {
		return err
	}
	res.Restored = true
	return count(ctx, m, targetURL, res)
}

// count compares every table of the manifest with the target's rows.
func count(ctx context.Context, m *archive.Manifest, targetURL string, res *Result) error {
	conn, err := pgconnect.Connect(ctx, targetURL, pgconnect.Options{AppName: "pgfleet"})
	if err != nil {
		return fmt.Errorf("restored, but counting the rows failed: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables := make([]pgtools.Table, len(m.Tables))
	for i, t := range m.Tables {
		tables[i] = pgtools.Table(t)
	}
	if err := pgtools.CountRowsIfPresent(ctx, conn, tables); err != nil {
		return fmt.Errorf("restored, but counting the rows failed: %w", err)
	}
	var differ []string
	for i, t := range tables {
		c := TableCheck{Table: m.Tables[i].String(), Expected: m.Tables[i].Rows, Restored: t.Rows}
		res.Tables = append(res.Tables, c)
		if t.Rows > 0 {
			res.RestoredRows += t.Rows
		}
		if !c.Match() {
			res.Differing++
			if len(differ) < 5 {
				differ = append(differ, c.describe())
			}
		}
	}
	res.Counted = true
	if res.Differing > 0 {
		more := ""
		if res.Differing > len(differ) {
			more = "; …"
		}
		return fmt.Errorf("restored, but %d of %d tables differ from the manifest: %s%s", res.Differing, len(tables), strings.Join(differ, "; "), more)
	}
	return nil
}

// run runs the restore program on the checked stream.
func run(ctx context.Context, b Backup, o Options, libpq []string, res *Result) error {
	m := b.Manifest
	obj, err := b.Store.Get(ctx, b.DumpKey)
	if err != nil {
		return err
	}
	defer obj.Close()
	hashed := &hashingReader{r: obj, h: sha256.New()}
	var plain io.Reader = hashed
	if m.Encrypted() {
		if plain, err = archive.Decrypt(hashed, o.Identities); err != nil {
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
		res.Bytes = hashed.n
		res.SHA256 = hex.EncodeToString(hashed.h.Sum(nil))
		if hashed.n != m.Bytes || res.SHA256 != m.SHA256 {
			return fmt.Errorf("%w: it has %d bytes with sha256 %s, the manifest says %d bytes with sha256 %s", ErrCorrupt, hashed.n, res.SHA256, m.Bytes, m.SHA256)
		}
		res.Verified = true
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

	prog := path.Base(o.Tool.Path)
	cmd, stderr := pgtools.Command(ctx, o.Tool.Path, libpq, args(m, o.Clean)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", prog, err)
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
			if res.Verified {
				// The whole checked backup had gone in: the program may
				// have been committing when it was stopped.
				return fmt.Errorf("stopped while %s was finishing: its one transaction either committed whole or was rolled back (count the target's rows to know): %w", prog, context.Cause(ctx))
			}
			return fmt.Errorf("stopped, nothing restored (the transaction was rolled back): %w", context.Cause(ctx))
		}
		err := waitErr
		if err == nil {
			err = copyErr
		}
		return fmt.Errorf("%s failed, and its one transaction was rolled back (the target is as it was): %v: %s", prog, err, stderr.String())
	}
	if !res.Verified {
		// The program ended without reading its whole input: it cannot
		// have restored the checked backup.
		return fmt.Errorf("%s ended before reading the whole backup: %s", prog, stderr.String())
	}
	return nil
}

// args is the restore program's command line: the connection is in libpq's
// environment; "--dbname=" (empty) makes pg_restore connect with it.
func args(m *archive.Manifest, clean bool) []string {
	if m.Format == archive.Plain {
		return []string{"--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction", "--file=-"}
	}
	a := []string{"--dbname=", "--no-password", "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error"}
	if clean {
		a = append(a, "--clean", "--if-exists")
	}
	return a
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
