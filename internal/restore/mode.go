// Package restore is `mode: restore`: one tenant's backup (the latest good
// one, or one chosen by key or time) brought into a database, checked on
// the way (SHA-256 against the manifest, age decryption) and restored in
// one transaction, so a corrupt or failed restore leaves the target as it
// was; then every table's rows are counted and compared with the manifest.
package restore

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"filippo.io/age"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/mode"
	"github.com/pgfleet/pgfleet/internal/pgconnect"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/recovery"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/destination"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// Mode is `mode: restore`.
type Mode struct{}

var _ mode.Mode = Mode{}

var (
	_ mode.Job            = (*Job)(nil)
	_ mode.SourceOverride = (*Job)(nil)
)

func (Mode) Name() string { return "restore" }

func (Mode) Synopsis() string {
	return "Restore one tenant's backup (latest good one, or by key or time) into a database in one transaction, checked against its manifest."
}

// The mode's own inputs, each declared once and read by its value.
var (
	InputRestoreProject     = &input.Input{Name: "restore-project", Description: "Required for restore: the tenant whose backup to restore, by project name or id (database-urls: its name). A project deleted since is found by its id among the destination's folders."}
	InputRestoreBackup      = &input.Input{Name: "restore-backup", Default: "latest", Description: "Which backup: latest (the newest good one); an object key, in full or just its file name; or a UTC time, RFC 3339 or the keys' 20261122T030000Z form, meaning the newest good backup at or before it."}
	InputRestoreTargetURL   = &input.Input{Name: "restore-target-url", Secret: true, Env: "PGFLEET_RESTORE_TARGET_URL", Description: "Required for restore: the database to restore into, postgres://user:password@host/db (store it as a secret; a direct host, not -pooler). Refused if it already has a table or view outside the system schemas, unless restore-clean. CLI: also PGFLEET_RESTORE_TARGET_URL, to keep it off the command line."}
	InputRestoreClean       = &input.Input{Name: "restore-clean", Default: "false", Bool: true, Description: "Restore into a database that already has tables: pg_restore drops and recreates the backup's objects (--clean --if-exists) and leaves others alone, all in the restore's one transaction. Custom format only (a plain dump carries DROP statements only if made with --clean)."}
	InputEncryptionIdentity = archive.InputEncryptionIdentity // shared with backup's drill
)

func (Mode) Inputs() []*input.Input {
	return append(destination.Inputs(),
		pgtools.InputPgDumpPath,
		InputRestoreProject,
		InputRestoreBackup,
		InputRestoreTargetURL,
		InputRestoreClean,
		InputEncryptionIdentity,
		InputRestoreIncludeDeleted,
	)
}

func (Mode) Outputs() []input.Output {
	return []input.Output{archive.OutputBytes, {Name: "restored-rows", Description: "Restore: rows in the restored tables, counted after the restore (each table compared with the backup's manifest)."}}
}

// Options are a validated restore.
type Options struct {
	Store      storage.Store
	Tenant     tenant.Tenant // the tenant whose backup it is; URL is the target's
	Backup     archive.Backup
	DumpKey    string
	Manifest   *archive.Manifest
	TargetURL  string
	Clean      bool
	Identities []age.Identity
	Tool       pgtools.Tool // pg_restore or psql
}

// Prepare checks every input and finds the tenant, the backup and its
// manifest, and checks the target is empty (or restore-clean), before
// anything is restored.
func (Mode) Prepare(ctx context.Context, env mode.Env) (mode.Job, error) {
	in := env.Inputs
	var o Options
	project := in.String(InputRestoreProject)
	if project == "" {
		in.Bad(InputRestoreProject, "required: the project name or id whose backup to restore")
	}
	spec := in.String(InputRestoreBackup)
	o.TargetURL, _ = recovery.TargetURL(in, InputRestoreTargetURL, env.Secret)
	if o.TargetURL == "" {
		in.Bad(InputRestoreTargetURL, "required: the database to restore into")
	}
	o.Clean = in.Bool(InputRestoreClean)
	if in.IsSet(InputEncryptionIdentity) {
		ids, err := archive.ParseIdentities(in.Raw(InputEncryptionIdentity))
		if err != nil {
			in.Bad(InputEncryptionIdentity, "%v", err)
		}
		o.Identities = ids
	}
	o.Store = destination.Open(ctx, destination.Env{Inputs: in, Workspace: env.Workspace, Getenv: env.Getenv, Secret: env.Secret}, destination.WriteOptions{})
	if in.Bool(InputRestoreIncludeDeleted) && o.Store != nil {
		o.Store = includingDeleted(in, o.Store)
	}
	pgDump, err := pgtools.FindTool(ctx, in.String(pgtools.InputPgDumpPath))
	if err != nil {
		in.Bad(pgtools.InputPgDumpPath, "%v", err)
	}
	if err := in.Err(); err != nil {
		return nil, err
	}

	t, err := findTenant(ctx, env.Source(false), project)
	gone := errors.Is(err, errNoTenant)
	if gone {
		// A project deleted since its backups were taken is restored by
		// its id: its folder ends with it.
		t = tenant.Tenant{ID: project, Name: project}
	} else if err != nil {
		return nil, err // an input error (two projects of that name) or an outage
	}
	folder, objs, err := archive.FindFolder(ctx, o.Store, t.Name, t.ID)
	if err != nil {
		// The store was opened and checked above: failing to list it
		// now is an outage, not the input.
		return nil, fmt.Errorf("listing the backups in %s failed: %w", o.Store, err)
	}
	good := archive.GoodBackups(archive.Scan(folder, objs))
	if gone && len(good) == 0 {
		return nil, &input.Error{Input: "restore-project", Problem: fmt.Sprintf("no selected tenant has the id or name %q, and %s holds no backup of a project with that id%s", project, o.Store, deletedHint(ctx, o.Store, t))}
	}
	o.Backup, err = archive.Choose(good, spec)
	if err != nil {
		hint := ""
		if len(good) == 0 {
			hint = deletedHint(ctx, o.Store, t)
		}
		return nil, &input.Error{Input: "restore-backup", Problem: fmt.Sprintf("%s: %v%s%s", t, err, available(good), hint), Err: err}
	}
	o.Manifest, err = archive.ReadManifest(ctx, o.Store, o.Backup.Manifest.Key)
	if err != nil {
		return nil, &input.Error{Input: "restore-backup", Err: err}
	}
	m := o.Manifest
	if gone {
		t.Name = m.Tenant
	}
	if m.ProjectID != t.ID {
		return nil, &input.Error{Input: "restore-backup", Problem: fmt.Sprintf("the manifest %s belongs to project %q, not %q", o.Backup.Manifest.Key, m.ProjectID, t.ID)}
	}
	// The dump is the one the manifest names (the same stamp, in this
	// folder: a copied bucket may have another prefix).
	for _, dmp := range o.Backup.Dumps {
		if path.Base(dmp.Key) == path.Base(m.Object) {
			o.DumpKey = dmp.Key
		}
	}
	if o.DumpKey == "" {
		return nil, &input.Error{Input: "restore-backup", Problem: fmt.Sprintf("the manifest %s names the dump %s, which is not in the folder", o.Backup.Manifest.Key, path.Base(m.Object))}
	}
	if m.Encrypted() && len(o.Identities) == 0 {
		in.Bad(InputEncryptionIdentity, "the backup %s is encrypted (age, for %s): give the secret key of one of them", path.Base(o.DumpKey), report.Plural(len(m.Encryption.Recipients), "recipient", "recipients"))
	}

	o.Tool, err = recovery.FindTool(ctx, pgDump, m.Format)
	if err != nil {
		in.Bad(pgtools.InputPgDumpPath, "%v", err)
	} else if err := recovery.CanRead(o.Tool, m); err != nil {
		in.Bad(pgtools.InputPgDumpPath, "%v", err)
	}
	if o.Clean && m.Format == archive.Plain && !slices.ContainsFunc(m.PgDumpArgs, func(a string) bool { return a == "--clean" || a == "-c" }) {
		in.Bad(InputRestoreClean, "the backup is a plain SQL dump made without --clean: it cannot drop what the target holds; restore it into an empty database")
	}
	if err := in.Err(); err != nil {
		return nil, err
	}
	if err := checkTarget(ctx, o.TargetURL, o.Clean); err != nil {
		return nil, &input.Error{Input: "restore-target-url", Err: err}
	}
	o.Tenant = tenant.Tenant{ID: t.ID, Name: t.Name, URL: o.TargetURL}
	return &Job{o: o}, nil
}

// findTenant lists the selected tenants and returns the one whose id, or
// else whose name, is project.
func findTenant(ctx context.Context, src tenant.Source, project string) (tenant.Tenant, error) {
	var byID *tenant.Tenant
	var byName []tenant.Tenant
	err := src.Tenants(ctx, func(t tenant.Tenant) bool {
		switch {
		case t.ID == project:
			t := t
			byID = &t
			return false
		case t.Name == project:
			byName = append(byName, t)
		}
		return true
	})
	switch {
	case byID != nil:
		return *byID, nil
	case err != nil:
		return tenant.Tenant{}, fmt.Errorf("listing the tenants to find %q failed: %w", project, err)
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		var ids []string
		for _, t := range byName {
			ids = append(ids, t.ID)
		}
		return tenant.Tenant{}, &input.Error{Input: "restore-project", Problem: fmt.Sprintf("%d projects are named %q (%s): give the project id", len(byName), project, strings.Join(ids, ", "))}
	}
	return tenant.Tenant{}, errNoTenant
}

// errNoTenant is a restore-project that names no tenant of the fleet.
var errNoTenant = errors.New("no such tenant")

// available lists the newest good backups, for a message.
func available(good []archive.Backup) string {
	if len(good) == 0 {
		return ""
	}
	var stamps []string
	for i, b := range good {
		if i == 5 {
			stamps = append(stamps, "…")
			break
		}
		stamps = append(stamps, b.Stamp)
	}
	return fmt.Sprintf(" (good backups, newest first: %s)", strings.Join(stamps, ", "))
}

// checkTarget connects to the target and refuses one that already holds
// tables, unless clean.
func checkTarget(ctx context.Context, targetURL string, clean bool) error {
	conn, err := pgconnect.Connect(ctx, targetURL, pgconnect.Options{AppName: "pgfleet"})
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	found, err := recovery.UserObjects(ctx, conn)
	if err != nil {
		return err
	}
	if len(found) > 0 && !clean {
		more := ""
		if len(found) > 5 {
			found, more = found[:5], ", …"
		}
		return errors.New("the target database is not empty (" + strings.Join(found, ", ") + more + "): restore into an empty database, or set restore-clean: true to drop and recreate the backup's objects")
	}
	return nil
}
