package restore

import (
	"context"
	"fmt"
	"path"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/recovery"
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

// Work restores the backup with recovery.Restore: streamed and checked
// against its manifest into pg_restore (custom) or psql (plain) running
// one transaction, then every table's rows counted.
func (j *Job) Work(ctx context.Context, _ tenant.Tenant) (fleet.Status, fleet.Detail, error) {
	d := &Detail{Object: j.o.DumpKey, Manifest: j.o.Backup.Manifest.Key, BackupTime: j.o.Manifest.StartedAt}
	b := recovery.Backup{Store: j.o.Store, DumpKey: j.o.DumpKey, Manifest: j.o.Manifest}
	opts := recovery.Options{Tool: j.o.Tool, Identities: j.o.Identities, Clean: j.o.Clean, AppName: "pgfleet-restore"}
	if err := recovery.Restore(ctx, b, j.o.TargetURL, opts, &d.Result); err != nil {
		return fleet.Failed, d, err
	}
	return fleet.Succeeded, d, nil
}
