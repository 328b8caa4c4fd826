package status

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/storage"
)

// bucket is the destination listed once for the whole run: one List of
// every key (the store pages it), grouped by tenant folder, instead of a
// request per tenant. The per-tenant work then reads only the newest good
// backup's manifest.
type bucket struct {
	store storage.Store
	once  sync.Once
	err   error
	// folders maps a folder name to its objects.
	folders map[string][]storage.Object

	mu      sync.Mutex
	claimed map[string]bool // folders some tenant of the fleet owns
}

func (b *bucket) list(ctx context.Context) error {
	b.once.Do(func() {
		objs, err := b.store.List(ctx, "")
		if err != nil {
			b.err = fmt.Errorf("list the destination %s: %w", b.store, err)
			return
		}
		b.folders = map[string][]storage.Object{}
		for _, o := range objs {
			if f, _, ok := strings.Cut(o.Key, "/"); ok {
				b.folders[f] = append(b.folders[f], o)
			}
		}
	})
	return b.err
}

// tenantFolders are the folders that belong to the tenant: the one its
// name gives and any other ending with its id (a renamed project keeps its
// old backups under its old slug).
func (b *bucket) tenantFolders(name, id string) []string {
	var out []string
	for f := range b.folders {
		if f == archive.Folder(name, id) || archive.FolderMatchesID(f, id) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	b.mu.Lock()
	for _, f := range out {
		b.claimed[f] = true
	}
	b.mu.Unlock()
	return out
}

// BackupState is one tenant's backups as the report shows them.
type BackupState struct {
	Newest     string    `json:"newest,omitempty"` // the newest good backup's dump key
	NewestTime time.Time `json:"newest_time,omitzero"`
	AgeSeconds int64     `json:"age_seconds,omitempty"`
	Bytes      int64     `json:"bytes,omitempty"`
	Good       int       `json:"good"`       // good backups kept (dump and checked manifest)
	Incomplete int       `json:"incomplete"` // dumps without a manifest, or whose manifest does not match
	Stale      bool      `json:"stale"`      // none, or older than max-backup-age
	Problem    string    `json:"problem,omitempty"`
}

// readBackups fills d.Backups for one tenant from the listing: the newest
// backup whose manifest is present and matches its dump (key, size, a
// sha256) is the newest good one.
func (j *Job) readBackups(ctx context.Context, name, id string, now time.Time) (*BackupState, error) {
	b := j.bucket
	if err := b.list(ctx); err != nil {
		return nil, err
	}
	st := &BackupState{}
	var all []archive.Backup
	for _, f := range b.tenantFolders(name, id) {
		all = append(all, archive.Scan(f, b.folders[f])...)
	}
	slices.SortFunc(all, func(x, y archive.Backup) int { return strings.Compare(y.Stamp, x.Stamp) }) // newest first
	var newest *archive.Backup
	for i, bk := range all {
		if !bk.Good() {
			st.Incomplete++
			continue
		}
		if newest == nil {
			// Only the newest candidate's manifest is read: the rest are
			// counted by their objects, so a tenant costs one Get.
			if problem := checkManifest(ctx, j.o.Store, bk); problem != "" {
				st.Incomplete++
				st.Problem = problem
				continue
			}
			newest = &all[i]
			continue
		}
		st.Good++
	}
	if newest == nil {
		st.Stale = true
		return st, nil
	}
	st.Good++
	st.Newest = newest.Dumps[0].Key
	st.NewestTime = newest.Time
	st.Bytes = newest.Dumps[0].Size
	age := now.Sub(newest.Time)
	st.AgeSeconds = int64(age / time.Second)
	st.Stale = j.o.MaxBackupAge > 0 && age > j.o.MaxBackupAge
	return st, nil
}

// checkManifest reads a backup's manifest and checks it describes the dump
// beside it: its key, its size and a sha256. "" when it does.
func checkManifest(ctx context.Context, s storage.Store, bk archive.Backup) string {
	m, err := archive.ReadManifest(ctx, s, bk.Manifest.Key)
	if err != nil {
		return err.Error()
	}
	for _, d := range bk.Dumps {
		if d.Key == m.Object || strings.HasSuffix(d.Key, "/"+m.Object) || strings.HasSuffix(m.Object, "/"+d.Key) {
			if d.Size != m.Bytes {
				return fmt.Sprintf("%s is %d bytes, its manifest says %d", d.Key, d.Size, m.Bytes)
			}
			return ""
		}
	}
	return fmt.Sprintf("manifest %s names %s, which is not there", bk.Manifest.Key, m.Object)
}

// departed are the folders no tenant of this run claimed, with their good
// backups and the newest one's time.
func (b *bucket) departed() [][3]string {
	if b == nil || b.folders == nil {
		return nil
	}
	var out [][3]string
	for f, objs := range b.folders {
		if b.claimed[f] {
			continue
		}
		backups := archive.Scan(f, objs)
		if len(backups) == 0 {
			continue // not a folder pgfleet wrote
		}
		good := archive.GoodBackups(backups)
		newest := "none"
		if len(good) > 0 {
			newest = good[0].Stamp
		}
		out = append(out, [3]string{f, fmt.Sprint(len(good)), newest})
	}
	slices.SortFunc(out, func(x, y [3]string) int { return strings.Compare(x[0], y[0]) })
	return out
}

// humanAge is a duration for people: 3d4h, 5h12m, 40s.
func humanAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}
