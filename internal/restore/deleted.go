package restore

import (
	"context"
	"fmt"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/tenant"
)

// InputRestoreIncludeDeleted opens the bucket's deleted versions to restore.
var InputRestoreIncludeDeleted = &input.Input{Name: "restore-include-deleted", Default: "false", Bool: true, Description: "Also find backups whose objects were deleted, in a versioned S3 bucket (which Object Lock makes every bucket it protects): " +
	"there a delete without a version id only adds a delete marker and the version stays, so the backups someone deleted with the job's credentials can still be restored. " +
	"Each object reads as its newest version that is not a delete marker, or, when it was written over, as its newest version whose lock still holds (an overwrite does not hide a locked backup; one locked itself, being newer, wins). " +
	"Off by default, so a restore never brings back a backup on purpose deleted unless asked; needs s3:ListBucketVersions, s3:GetObjectVersion and s3:GetObjectRetention. Not for a folder destination, which keeps no versions."}

// includingDeleted is s seen with its deleted versions, for
// restore-include-deleted; nil, with the input blamed, when s keeps none.
func includingDeleted(in *input.Values, s storage.Store) storage.Store {
	v, ok := s.(storage.Versioned)
	if !ok {
		in.Bad(InputRestoreIncludeDeleted, "%s keeps no deleted versions (a local folder deletes for good): only for an s3:// destination", s)
		return nil
	}
	return v.IncludingDeleted()
}

// deletedHint says, after no backup was found, whether deleted versions
// hold some, so the person restoring learns of restore-include-deleted
// just when it would help. "" when the store keeps no versions.
func deletedHint(ctx context.Context, s storage.Store, t tenant.Tenant) string {
	v, ok := s.(storage.Versioned)
	if !ok {
		return ""
	}
	folder, objs, err := archive.FindFolder(ctx, v.IncludingDeleted(), t.Name, t.ID)
	if err != nil {
		return "; if its backups were deleted from a versioned bucket, restore-include-deleted: true restores the versions a delete hid"
	}
	good := archive.GoodBackups(archive.Scan(folder, objs))
	if len(good) == 0 {
		return "; nor among versions hidden by a delete (what restore-include-deleted: true would restore)"
	}
	return fmt.Sprintf("; but %s hidden by a delete (a delete marker over a version that stays, as Object Lock keeps it), the newest %s: set restore-include-deleted: true to restore from them",
		report.Plural(len(good), "backup is", "backups are"), good[0].Stamp)
}
