// Package backup is `mode: backup`: every tenant dumped with pg_dump in one
// stream through compression (and encryption) into the destination, a
// manifest written beside each complete dump, and old backups pruned.
//
// A backup exists only when it is complete and checked: pg_dump's output
// goes through zstd or gzip (several cores), optional age encryption and a
// SHA-256 straight into the store's all-or-nothing Put, and the stream
// reaches its end only after pg_dump exited 0 and the row counts taken in
// the dump's snapshot are in. Anything else (pg_dump failing, the stream
// breaking, the store refusing, the run cancelled) makes Put discard the
// upload. Only then is the manifest written; only after both is that
// tenant's folder pruned.
package backup

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/destination"
)

// Mode is `mode: backup`.
type Mode struct{}

var _ mode.Mode = Mode{}

var _ mode.Job = (*Job)(nil)

func (Mode) Name() string { return "backup" }

func (Mode) Synopsis() string {
	return "Dump every tenant with pg_dump, compressed (and encrypted) in one stream to S3 or a folder, with a checked manifest; then prune old backups."
}

// The mode's own inputs, each declared once and read by its value.
var (
	InputFormat              = &input.Input{Name: "format", Default: "custom", Description: "Dump format: custom (pg_dump -Fc, restored with pg_restore, selectively if need be) or plain (SQL, restored with psql)."}
	InputCompression         = &input.Input{Name: "compression", Default: "zstd", Description: "Compression pgfleet applies in the stream on several cores (pg_dump itself runs uncompressed): zstd, gzip or none."}
	InputCompressionLevel    = &input.Input{Name: "compression-level", Description: "zstd 1-22 (default 1, the fastest: on a two-core runner level 3 made the stream slower than pg_dump alone) or gzip 1-9 (default 6; gzip is several times slower than zstd)."}
	InputEncryptionRecipient = &input.Input{Name: "encryption-recipient", Description: "age public keys (age1..., separated by newlines, commas or spaces): each dump is encrypted on the runner for them before it leaves, so whoever reads the bucket cannot read the data. Restore needs a matching encryption-identity."}
	InputPgDumpArgs          = &input.Input{Name: "pg-dump-args", Default: "--no-owner --no-privileges", Description: "Extra pg_dump arguments, separated by spaces. pgfleet sets the connection, format, compression and snapshot itself; options that leave tables or rows out (-t, -n, -s, --exclude-table-data...) are refused, since the manifest's row counts prove every table."}
	InputRetentionDays       = &input.Input{Name: "retention-days", Default: "7", Description: "After a tenant's new backup and manifest are written, its good backups older than this many days (by the time in their names) are pruned, keep-last excepted. With drill-target-url, only after the restore drill, and not for a tenant whose new backup failed it."}
	InputKeepLast            = &input.Input{Name: "keep-last", Default: "3", Description: "The newest this many good backups of each tenant are never pruned, whatever their age (at least 1)."}
)

func (Mode) Inputs() []*input.Input {
	return append(append(append(destination.Inputs(), destination.WriteInputs()...),
		InputFormat,
		InputCompression,
		InputCompressionLevel,
		InputEncryptionRecipient,
		pgtools.InputPgDumpPath,
		InputPgDumpArgs,
		InputRetentionDays,
		InputKeepLast,
	), DrillInputs()...)
}

func (Mode) Outputs() []input.Output {
	return []input.Output{archive.OutputBytes, outputDrilled, outputDrillFailed}
}

// Options are a validated backup.
type Options struct {
	Tool          string // "pgfleet <version>", recorded in each manifest
	Store         storage.Store
	Format        archive.Format
	Compression   archive.Compression
	Level         int
	Recipients    []age.Recipient
	RecipientKeys []string
	PgDump        pgtools.Tool
	PgDumpArgs    []string
	RetentionDays int
	KeepLast      int
	Lock          storage.Lock // every object the store writes is locked so (the store was checked)
	Drill         *drill       // the restore drill; nil for none
	// Now is the clock (for tests); default time.Now.
	Now func() time.Time
	// Warn prints a warning (an annotation in Actions); nil prints none.
	Warn func(format string, a ...any)
}

// Prepare validates every input, opens the store (no request yet, unless
// object lock is asked for: then the bucket is checked) and asks pg_dump
// its version, before any tenant is touched.
func (Mode) Prepare(ctx context.Context, env mode.Env) (mode.Job, error) {
	in := env.Inputs
	o := Options{
		Tool:          "pgfleet " + env.Version,
		Format:        archive.Format(in.OneOf(InputFormat, "custom", "plain")),
		Compression:   archive.Compression(in.OneOf(InputCompression, "zstd", "gzip", "none")),
		RetentionDays: in.Int(InputRetentionDays, 1, 100000, "days"),
		KeepLast:      in.Int(InputKeepLast, 1, 100000, "backups"),
	}
	switch o.Compression {
	case archive.Zstd:
		o.Level = archive.ZstdDefaultLevel
		if in.IsSet(InputCompressionLevel) {
			o.Level = in.Int(InputCompressionLevel, archive.ZstdMinLevel, archive.ZstdMaxLevel, "zstd level")
		}
	case archive.Gzip:
		o.Level = archive.GzipDefaultLevel
		if in.IsSet(InputCompressionLevel) {
			o.Level = in.Int(InputCompressionLevel, archive.GzipMinLevel, archive.GzipMaxLevel, "gzip level")
		}
	case archive.None:
		if in.IsSet(InputCompressionLevel) {
			in.Bad(InputCompressionLevel, "compression is none")
		}
	}
	if in.IsSet(InputEncryptionRecipient) {
		rs, keys, err := archive.ParseRecipients(in.String(InputEncryptionRecipient))
		if err != nil {
			in.Bad(InputEncryptionRecipient, "%v", err)
		}
		o.Recipients, o.RecipientKeys = rs, keys
	}
	args, err := ParseDumpArgs(in.String(InputPgDumpArgs))
	if err != nil {
		in.Bad(InputPgDumpArgs, "%v", err)
	}
	o.PgDumpArgs = args
	for _, u := range env.Config.DatabaseURLs {
		if p := pgtools.PoolerProblem(u.URL); p != "" {
			in.Bad(input.DatabaseURLs, "tenant %s: %s", u.Name, p)
		}
	}
	sse := in.String(destination.InputS3SSE)
	if sse != "" && sse != "AES256" && sse != "aws:kms" {
		in.Bad(destination.InputS3SSE, "want AES256 or aws:kms, got %q", sse)
		sse = ""
	}
	w := destination.WriteOptions{SSE: sse, KMSKeyID: in.String(destination.InputS3KMSKeyID), StorageClass: in.String(destination.InputS3StorageClass),
		Lock: destination.ReadLock(in)}
	o.Store = destination.Open(ctx, destination.Env{Inputs: in, Workspace: env.Workspace, Getenv: env.Getenv, Secret: env.Secret}, w)
	tool, err := pgtools.FindTool(ctx, in.String(pgtools.InputPgDumpPath))
	if err != nil {
		in.Bad(pgtools.InputPgDumpPath, "%v", err)
	}
	o.PgDump = tool
	if err := prepareDrill(ctx, env, &o); err != nil {
		return nil, err
	}
	if err := in.Err(); err != nil {
		return nil, err
	}
	// The one request before any tenant: a lock the bucket cannot keep
	// is refused, never silently dropped.
	if err := destination.CheckLock(ctx, o.Store, w); err != nil {
		return nil, err
	}
	o.Lock = w.Lock
	o.Warn = env.Warn
	if msg := lockWarning(o); msg != "" && o.Warn != nil {
		o.Warn("%s", msg)
	}
	return NewJob(o), nil
}

// Job backs up tenants with one validated set of options.
type Job struct {
	o       Options
	started time.Time
	dumped  atomic.Int64 // pg_dump output read so far, all tenants
	pending pendingList  // the destination's unfinished uploads (retention)
	locks   lockCheck    // whether the destination can lock (retention)
}

var (
	_ mode.Progresser = (*Job)(nil)
	_ mode.Finisher   = (*Job)(nil)
)

// NewJob returns the job for o.
func NewJob(o Options) *Job {
	if o.Now == nil {
		o.Now = time.Now
	}
	j := &Job{o: o, started: time.Now()}
	// A run that locks has had its bucket's Object Lock checked in
	// Prepare: retention need not ask again.
	j.locks.asked = o.Lock.On()
	return j
}

// ProgressNote: pg_dump output read so far and its rate, for the runner's
// progress lines while long dumps run.
func (j *Job) ProgressNote() string {
	n := j.dumped.Load()
	secs := time.Since(j.started).Seconds()
	if n == 0 || secs <= 0 {
		return ""
	}
	return fmt.Sprintf("%s dumped, %s/s", archive.HumanBytes(n), archive.HumanBytes(int64(float64(n)/secs)))
}

func (j *Job) Describe() string {
	comp := string(j.o.Compression)
	if j.o.Compression != archive.None {
		comp += fmt.Sprintf(" level %d", j.o.Level)
	}
	enc := ""
	if len(j.o.Recipients) > 0 {
		enc = ", encrypted for " + report.Plural(len(j.o.Recipients), "age recipient", "age recipients")
	}
	drill := ""
	if d := j.o.Drill; d != nil {
		drill = fmt.Sprintf("; then a restore drill of %s into %s, and only then retention", report.Plural(d.count, "backup", "backups"), d.target)
	}
	return fmt.Sprintf("to %s (%s format, %s%s%s) with pg_dump %s (%s); keep %d days, at least the last %d per tenant%s",
		j.o.Store, j.o.Format, comp, enc, describeLock(j.o.Lock), j.o.PgDump.Version, j.o.PgDump.Path, j.o.RetentionDays, j.o.KeepLast, drill)
}

func (j *Job) DryRun() bool { return false }
