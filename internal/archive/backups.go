package archive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/storage"
)

// Backup is one timestamp in a tenant's folder: the dump(s) and manifest
// pgfleet wrote for it. Only a backup with both is good: a dump without
// its manifest was never checked (a run died between the two, or is still
// writing), and retention, `latest` and restore ignore it.
type Backup struct {
	Stamp    string
	Time     time.Time
	Dumps    []storage.Object // normally one
	Manifest *storage.Object  // nil when there is none
}

// Good reports whether the backup has its dump and its manifest.
func (b Backup) Good() bool { return len(b.Dumps) > 0 && b.Manifest != nil }

// Keys are every object of the backup, the manifest first: deleting in
// this order never leaves a manifest whose dump is gone (a dump whose
// manifest is gone is debris, cleaned up later).
func (b Backup) Keys() []string {
	var keys []string
	if b.Manifest != nil {
		keys = append(keys, b.Manifest.Key)
	}
	for _, d := range b.Dumps {
		keys = append(keys, d.Key)
	}
	return keys
}

// Scan groups the objects of one tenant folder (as List returns them for
// the prefix folder+"/") into backups, oldest first. Objects whose names
// pgfleet does not write, and objects in sub-folders, are left out: they
// are never touched.
func Scan(folder string, objs []storage.Object) []Backup {
	by := map[string]*Backup{}
	var order []string
	for _, o := range objs {
		file, ok := strings.CutPrefix(o.Key, folder+"/")
		if !ok || strings.Contains(file, "/") {
			continue
		}
		n, ok := ParseName(file)
		if !ok {
			continue
		}
		b := by[n.Stamp]
		if b == nil {
			b = &Backup{Stamp: n.Stamp, Time: n.Time}
			by[n.Stamp] = b
			order = append(order, n.Stamp)
		}
		switch n.Kind {
		case KindManifest:
			o := o
			b.Manifest = &o
		case KindDump:
			b.Dumps = append(b.Dumps, o)
		}
	}
	slices.Sort(order)
	out := make([]Backup, len(order))
	for i, s := range order {
		out[i] = *by[s]
	}
	return out
}

// GoodBackups are the good ones among backups, newest first.
func GoodBackups(backups []Backup) []Backup {
	var good []Backup
	for _, b := range backups {
		if b.Good() {
			good = append(good, b)
		}
	}
	slices.Reverse(good)
	return good
}

// ErrNoBackup is wrapped when a tenant has no good backup matching a choice.
var ErrNoBackup = errors.New("no good backup")

// FindFolder lists the tenant's backups: in the folder its current name
// gives, else (a renamed project) in any folder that ends with its id. It
// returns the folder and its objects, or the first folder's name and
// nothing when there are none.
func FindFolder(ctx context.Context, s storage.Store, name, id string) (string, []storage.Object, error) {
	folder := Folder(name, id)
	objs, err := s.List(ctx, folder+"/")
	if err != nil || len(GoodBackups(Scan(folder, objs))) > 0 {
		return folder, objs, err
	}
	all, err := s.List(ctx, "")
	if err != nil {
		return folder, nil, err
	}
	var best string
	var bestObjs []storage.Object
	var bestNewest string
	byFolder := map[string][]storage.Object{}
	for _, o := range all {
		f, _, ok := strings.Cut(o.Key, "/")
		if ok && f != folder && FolderMatchesID(f, id) {
			byFolder[f] = append(byFolder[f], o)
		}
	}
	for f, objs := range byFolder {
		good := GoodBackups(Scan(f, objs))
		if len(good) > 0 && good[0].Stamp > bestNewest {
			best, bestObjs, bestNewest = f, objs, good[0].Stamp
		}
	}
	if best == "" {
		return folder, objs, nil
	}
	return best, bestObjs, nil
}

// Choose picks a good backup (newest first in good) by spec: "latest"; an
// object key, full (with or without the destination's prefix) or just its
// file name (the dump's or the manifest's); or a UTC time, RFC 3339 or the
// keys' form, meaning the newest at or before it.
func Choose(good []Backup, spec string) (Backup, error) {
	spec = strings.TrimSpace(spec)
	if len(good) == 0 {
		return Backup{}, fmt.Errorf("%w in the tenant's folder", ErrNoBackup)
	}
	if spec == "" || strings.EqualFold(spec, "latest") {
		return good[0], nil
	}
	if at, ok := parseTime(spec); ok {
		for _, b := range good {
			if !b.Time.After(at) {
				return b, nil
			}
		}
		return Backup{}, fmt.Errorf("%w at or before %s: the oldest is %s", ErrNoBackup, at.Format(time.RFC3339), good[len(good)-1].Stamp)
	}
	file := spec
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		file = spec[i+1:]
	}
	for _, b := range good {
		for _, k := range b.Keys() {
			if k == spec || strings.HasSuffix(spec, "/"+k) || (file == spec && strings.HasSuffix(k, "/"+file)) {
				return b, nil
			}
		}
	}
	return Backup{}, fmt.Errorf("%w named %q: want latest, a key or file name of a good backup, or a time (RFC 3339 or %s)", ErrNoBackup, spec, StampFormat)
}

// parseTime reads a restore-backup time: RFC 3339 (any offset, converted to
// UTC) or the keys' stamp form.
func parseTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), true
	}
	if t, err := time.Parse(StampFormat, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}
