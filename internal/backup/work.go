package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// finishTimeout bounds writing the manifest, or removing a dump whose
// manifest could not be written, once the dump is stored: these run on a
// context of their own, so a run cancelled at that moment still leaves a
// good backup or none, not a dump without its manifest.
const finishTimeout = 30 * time.Second

// Application names of pgfleet's own session and of pg_dump's.
const (
	appName       = "pgfleet"
	dumpAppName   = "pgfleet-pg_dump"
	stampAttempts = 3
)

// Work backs up one tenant: its own session exports a snapshot, pg_dump
// dumps that snapshot while the session counts every table's rows in it,
// the dump is stored, then its manifest, then the folder is pruned (with a
// restore drill, in Finish, after the drill).
func (j *Job) Work(ctx context.Context, t tenant.Tenant) (fleet.Status, fleet.Detail, error) {
	d := &Detail{}
	if p := pgtools.PoolerProblem(t.URL); p != "" {
		return fleet.Failed, d, errors.New(p)
	}
	folder := archive.Folder(t.Name, t.ID)
	libpq, err := pgtools.LibpqEnv(t.URL, dumpAppName)
	if err != nil {
		return fleet.Failed, d, err
	}
	// The folder is listed before pg_dump starts: a store that cannot be
	// reached (or read) fails the tenant before any work, and a stamp that
	// is taken already is never written over.
	objs, err := j.o.Store.List(ctx, folder+"/")
	if err != nil {
		return fleet.Failed, d, err
	}
	started, err := j.freeStamp(ctx, folder, objs)
	if err != nil {
		return fleet.Failed, d, err
	}
	key := archive.DumpKey(folder, started, archive.Ext(j.o.Format, j.o.Compression, len(j.o.Recipients) > 0))
	d.Object = key

	conn, err := pgconnect.Connect(ctx, t.URL, pgconnect.Options{AppName: appName})
	if err != nil {
		return fleet.Failed, d, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	d.ServerVersion = conn.PgConn().ParameterStatus("server_version")
	d.PgDumpVersion = j.o.PgDump.Version
	if err := pgtools.CheckDumpVersion(j.o.PgDump, d.ServerVersion); err != nil {
		return fleet.Failed, d, err
	}

	// The snapshot: exported from a read-only repeatable-read transaction
	// that stays open until pg_dump has finished with it. Nothing this
	// session runs may time out under the user's settings.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fleet.Failed, d, fmt.Errorf("begin the snapshot transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var snapshot string
	err = tx.QueryRow(ctx, `SELECT pg_catalog.set_config('statement_timeout', '0', true), pg_catalog.set_config('idle_in_transaction_session_timeout', '0', true),
		pg_catalog.set_config('lock_timeout', '0', true), pg_catalog.pg_export_snapshot()`).Scan(nil, nil, nil, &snapshot)
	if err != nil {
		return fleet.Failed, d, fmt.Errorf("export a snapshot: %w", err)
	}
	tables, err := pgtools.ListTables(ctx, tx)
	if err != nil {
		return fleet.Failed, d, err
	}

	// Count while pg_dump runs; the stream ends only once the counts are in.
	countCtx, stopCount := context.WithCancel(ctx)
	counted := make(chan error, 1)
	go func() { counted <- pgtools.CountRows(countCtx, tx, tables) }()
	countsDone := false
	ready := func() error {
		countsDone = true
		if err := <-counted; err != nil {
			return fmt.Errorf("row counts in the dump's snapshot: %w", err)
		}
		return nil
	}
	var dumped atomic.Int64
	begin := time.Now()
	res, err := j.stream(ctx, key, libpq, snapshot, ready, &dumped)
	d.Seconds = time.Since(begin).Seconds()
	stopCount()
	if !countsDone {
		<-counted
	}
	d.DumpBytes = dumped.Load()
	if err != nil {
		return fleet.Failed, d, err
	}
	tx.Rollback(ctx)
	finished := j.o.Now().UTC()
	d.Bytes, d.SHA256 = res.ObjectBytes, res.SHA256
	d.Tables = len(tables)
	for _, tb := range tables {
		d.Rows += tb.Rows
	}

	m := &archive.Manifest{
		Version:       archive.ManifestVersion,
		Tool:          j.o.Tool,
		Tenant:        t.Name,
		ProjectID:     t.ID,
		Host:          hostOf(t.URL),
		Database:      conn.Config().Database,
		ServerVersion: d.ServerVersion,
		PgDumpVersion: j.o.PgDump.Version,
		PgDumpArgs:    j.o.PgDumpArgs,
		Format:        j.o.Format,
		Compression:   j.o.Compression,
		Level:         j.o.Level,
		Object:        key,
		Bytes:         res.ObjectBytes,
		SHA256:        res.SHA256,
		DumpBytes:     res.DumpBytes,
		Snapshot:      snapshot,
		StartedAt:     started,
		FinishedAt:    finished,
		Tables:        make([]archive.Table, len(tables)),
	}
	for i, tb := range tables {
		m.Tables[i] = archive.Table(tb)
	}
	if m.PgDumpArgs == nil {
		m.PgDumpArgs = []string{}
	}
	if len(j.o.RecipientKeys) > 0 {
		m.Encryption = &archive.Encryption{Scheme: "age", Recipients: j.o.RecipientKeys}
	}
	if err := j.writeManifest(ctx, m); err != nil {
		return fleet.Failed, d, err
	}
	d.Manifest = archive.ManifestKey(key)
	d.complete = true

	if j.o.Drill != nil {
		// Retention waits for the restore drill (Finish): a new backup
		// that fails its drill must not have cost the tenant the older
		// ones, and a run that never gets to the drill prunes nothing.
		d.pruneStamp, d.unpruned, d.RetentionNote = archive.Stamp(started), true, notPrunedNotReached
		return fleet.Succeeded, d, nil
	}
	if err := j.prune(ctx, folder, archive.Stamp(started), d); err != nil {
		d.notePruneFailed("pruning failed", err)
		return fleet.Failed, d, pruneFailed(key, err)
	}
	return fleet.Succeeded, d, nil
}

// pruneFailed is a tenant's error when retention failed after its backup.
func pruneFailed(key string, err error) error {
	return fmt.Errorf("the backup %s is complete with its manifest, but pruning the folder failed: %w", key, err)
}

// freeStamp is this backup's time: now, to the second, unless the folder
// already holds an object of that second (a run a moment ago), then the
// next free second.
func (j *Job) freeStamp(ctx context.Context, folder string, objs []storage.Object) (time.Time, error) {
	taken := map[string]bool{}
	for _, b := range archive.Scan(folder, objs) {
		taken[b.Stamp] = true
	}
	for range stampAttempts {
		now := j.o.Now().UTC().Truncate(time.Second)
		if !taken[archive.Stamp(now)] {
			return now, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(time.Until(now.Add(time.Second))):
		}
	}
	return time.Time{}, errors.New("the folder already holds backups of this second: is another run backing this tenant up at the same time?")
}

// writeManifest stores the manifest beside its dump on a context of its
// own. If it cannot be written, the dump is removed: a dump without its
// manifest is no good backup.
func (j *Job) writeManifest(ctx context.Context, m *archive.Manifest) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if _, err := j.o.Store.Put(fctx, archive.ManifestKey(m.Object), bytes.NewReader(b)); err != nil {
		if derr := j.o.Store.Delete(fctx, m.Object); derr != nil {
			return fmt.Errorf("write the manifest: %w (and removing the dump without it failed too: %v; the next run removes it after a day)", err, derr)
		}
		return fmt.Errorf("write the manifest: %w (the dump was removed)", err)
	}
	return nil
}

// hostOf is the host of a connection URL, for the manifest.
func hostOf(rawURL string) string {
	h, _, _ := strings.Cut(tenant.HostDB(rawURL), "/")
	return h
}

// fileName is the last part of a key.
func fileName(key string) string { return path.Base(key) }
