package backup

import (
	"context"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/storage"
)

// DebrisAge is how old an incomplete backup must be before it is removed:
// a dump without its manifest, a manifest without its dump, a pending
// upload. Younger ones may belong to a run still going.
const DebrisAge = 24 * time.Hour

// Policy is what retention keeps.
type Policy struct {
	Days     int // good backups older than this are pruned...
	KeepLast int // ...except the newest KeepLast, whatever their age
}

// Pruning is what retention removes from one tenant's folder.
type Pruning struct {
	Backups []archive.Backup // good backups past the policy
	Debris  []string         // keys of incomplete backups older than DebrisAge
	Uploads []storage.Upload // pending uploads older than DebrisAge
}

// Plan decides what to remove from a tenant's folder, given its backups
// (archive.Scan), its pending uploads and the stamp of the backup this run
// just completed. Ages come from the stamps in the names, never from
// LastModified. Only names pgfleet writes are considered: Scan leaves every
// other object out, and uploads of other names are kept.
func Plan(now time.Time, p Policy, folder string, backups []archive.Backup, uploads []storage.Upload, current string) Pruning {
	var pr Pruning
	good := archive.GoodBackups(backups) // newest first
	keep := max(p.KeepLast, 1)
	horizon := now.Add(-time.Duration(p.Days) * 24 * time.Hour)
	for i, b := range good {
		if i < keep || b.Stamp == current || !b.Time.Before(horizon) {
			continue
		}
		pr.Backups = append(pr.Backups, b)
	}
	debrisBefore := now.Add(-DebrisAge)
	for _, b := range backups {
		if b.Good() || b.Stamp == current || !b.Time.Before(debrisBefore) {
			continue
		}
		pr.Debris = append(pr.Debris, b.Keys()...)
	}
	for _, u := range uploads {
		dir, file := path.Split(u.Key)
		if strings.TrimSuffix(dir, "/") != folder {
			continue
		}
		n, ok := archive.ParseName(file)
		if !ok || n.Stamp == current || !n.Time.Before(debrisBefore) {
			continue
		}
		pr.Uploads = append(pr.Uploads, u)
	}
	return pr
}

// prune applies retention to the folder after this run's backup (stamp
// current) and its manifest are written, and records what it removed in d.
func (j *Job) prune(ctx context.Context, folder, current string, d *Detail) error {
	objs, err := j.o.Store.List(ctx, folder+"/")
	if err != nil {
		return err
	}
	uploads, err := j.pendingUploads(ctx)
	if err != nil {
		return err
	}
	backups := archive.Scan(folder, objs)
	// This run's backup must be among the good ones before anything goes:
	// a listing that does not show it (an eventually consistent store)
	// would count one good backup too few.
	found := false
	for _, b := range backups {
		if b.Stamp == current && b.Good() {
			found = true
		}
	}
	if !found {
		d.RetentionNote, d.unpruned = "skipped: the new backup was not listed yet", true
		return nil
	}
	now := j.o.Now()
	pr := Plan(now, Policy{Days: j.o.RetentionDays, KeepLast: j.o.KeepLast}, folder, backups, uploads, current)
	for _, b := range pr.Backups {
		// A locked backup is kept: deleting it would only hide it.
		until, err := j.lockedUntil(ctx, b, now)
		if err != nil {
			return err
		}
		if !until.IsZero() {
			d.Locked = append(d.Locked, LockedBackup{Stamp: b.Stamp, Until: until})
			continue
		}
		for _, k := range b.Keys() {
			if err := j.o.Store.Delete(ctx, k); err != nil {
				return err
			}
		}
		d.Pruned = append(d.Pruned, b.Stamp)
	}
	for _, k := range pr.Debris {
		if err := j.o.Store.Delete(ctx, k); err != nil {
			return err
		}
		d.Debris = append(d.Debris, k)
	}
	for _, u := range pr.Uploads {
		if err := j.o.Store.Abort(ctx, u); err != nil {
			return err
		}
		d.Aborted = append(d.Aborted, u.Key)
	}
	return nil
}

// pendingList is the destination's unfinished uploads, listed once a run.
type pendingList struct {
	mu      sync.Mutex
	listed  bool
	uploads []storage.Upload
}

// pendingUploads is every unfinished upload in the destination, listed by
// the first tenant to prune (a failed listing is tried again by the next)
// rather than by every tenant: retention aborts only uploads older than
// DebrisAge, and Plan keeps each tenant's own, so a listing from early in
// the run finds the same ones a later one would (unless the run lasts a
// day). On S3 that is one request a run instead of one a tenant (two on
// MinIO, see s3.Store.Pending), in a loop where every request costs CPU
// and a round trip.
func (j *Job) pendingUploads(ctx context.Context) ([]storage.Upload, error) {
	p := &j.pending
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.listed {
		ups, err := j.o.Store.Pending(ctx, "")
		if err != nil {
			return nil, err
		}
		p.uploads, p.listed = ups, true
	}
	return p.uploads, nil
}
