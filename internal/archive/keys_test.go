package archive

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/storage"
)

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Acme Corp":                    "acme-corp",
		"  --Acme--  ":                 "acme",
		"ACME_corp.io":                 "acme-corp-io",
		"Café Müller":                  "caf-m-ller",
		"日本":                           "",
		"a":                            "a",
		"x" + strings.Repeat("-y", 30): "x-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y", // cut at 40, trailing - trimmed
		strings.Repeat("ab", 30):       strings.Repeat("ab", 20),
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
		if len(Slug(in)) > 40 {
			t.Errorf("Slug(%q) longer than 40", in)
		}
	}
}

func TestFolder(t *testing.T) {
	for _, c := range []struct{ name, id, want string }{
		{"Acme Corp", "wispy-fire-12345678", "acme-corp-wispy-fire-12345678"},
		{"acme", "acme", "acme"},   // database-urls: the name is the id
		{"日本", "proj-1", "proj-1"}, // a name that slugs to nothing
	} {
		if got := Folder(c.name, c.id); got != c.want {
			t.Errorf("Folder(%q, %q) = %q, want %q", c.name, c.id, got, c.want)
		}
	}
	// Ids that are no folder name get their slug and a hash, so two that
	// slug alike stay apart, and every folder is one key segment.
	a, b := Folder("host/db", "host/db"), Folder("host.db", "host.db")
	if a == b || strings.Contains(a, "/") || !strings.HasPrefix(a, "host-db-") {
		t.Errorf("folders %q and %q: want distinct host-db-<hash>", a, b)
	}
	if err := storage.CheckKey(Folder("x", "../..") + "/f"); err != nil {
		t.Error(err)
	}
	if !FolderMatchesID("old-name-wispy-fire-1", "wispy-fire-1") || FolderMatchesID("acme-wispy-fire-12", "wispy-fire-1") {
		t.Error("FolderMatchesID")
	}
}

func TestNames(t *testing.T) {
	at := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	key := DumpKey("acme-p1", at, Ext(Custom, Zstd, false))
	if key != "acme-p1/20261122T030000Z.dump.zst" {
		t.Errorf("DumpKey = %q", key)
	}
	if mk := ManifestKey(key); mk != "acme-p1/20261122T030000Z.manifest.json" {
		t.Errorf("ManifestKey = %q", mk)
	}
	for _, c := range []struct {
		f    Format
		c    Compression
		enc  bool
		want string
	}{
		{Custom, None, false, "dump"}, {Plain, Gzip, false, "sql.gz"}, {Plain, Zstd, true, "sql.zst.age"}, {Custom, Gzip, true, "dump.gz.age"},
	} {
		ext := Ext(c.f, c.c, c.enc)
		if ext != c.want {
			t.Errorf("Ext = %q, want %q", ext, c.want)
		}
		n, ok := ParseName("20261122T030000Z." + ext)
		if !ok || n.Kind != KindDump || n.Format != c.f || n.Compression != c.c || n.Encrypted != c.enc || !n.Time.Equal(at) {
			t.Errorf("ParseName(%s) = %+v, %v", ext, n, ok)
		}
	}
	for _, foreign := range []string{"notes.txt", "20261122T030000Z.dump.zst.bak", "20261122T030000Z.tar", "2026-11-22.dump", "20261122T030000Z.manifest.json.old", "20261399T030000Z.dump"} {
		if _, ok := ParseName(foreign); ok {
			t.Errorf("ParseName(%q) accepted a name pgfleet does not write", foreign)
		}
	}
}

func objs(keys ...string) []storage.Object {
	var out []storage.Object
	for _, k := range keys {
		out = append(out, storage.Object{Key: k, Size: 1})
	}
	return out
}

func TestScanAndChoose(t *testing.T) {
	f := "acme-p1"
	bs := Scan(f, objs(
		f+"/20261101T030000Z.dump.zst", f+"/20261101T030000Z.manifest.json",
		f+"/20261102T030000Z.dump.zst", // no manifest: not good
		f+"/20261103T030000Z.dump.zst", f+"/20261103T030000Z.manifest.json",
		f+"/20261104T030000Z.manifest.json", // no dump
		f+"/notes.txt", f+"/sub/20261105T030000Z.dump.zst", "acme-p10/20261106T030000Z.dump.zst",
	))
	var stamps []string
	for _, b := range bs {
		stamps = append(stamps, b.Stamp)
	}
	if !slices.Equal(stamps, []string{"20261101T030000Z", "20261102T030000Z", "20261103T030000Z", "20261104T030000Z"}) {
		t.Fatalf("Scan stamps = %v", stamps)
	}
	good := GoodBackups(bs)
	if len(good) != 2 || good[0].Stamp != "20261103T030000Z" {
		t.Fatalf("GoodBackups = %+v", good)
	}
	if k := good[0].Keys(); k[0] != f+"/20261103T030000Z.manifest.json" {
		t.Errorf("Keys must list the manifest first: %v", k)
	}
	for spec, want := range map[string]string{
		"":                               "20261103T030000Z",
		"latest":                         "20261103T030000Z",
		"20261101T030000Z.dump.zst":      "20261101T030000Z",
		"20261101T030000Z.manifest.json": "20261101T030000Z",
		f + "/20261101T030000Z.dump.zst": "20261101T030000Z",
		"tenants/" + f + "/20261101T030000Z.dump.zst": "20261101T030000Z",
		"2026-11-02T12:00:00Z":                        "20261101T030000Z",
		"2026-11-03T04:00:00+01:00":                   "20261103T030000Z", // 03:00 UTC: at or before
		"20261103T025959Z":                            "20261101T030000Z",
	} {
		b, err := Choose(good, spec)
		if err != nil || b.Stamp != want {
			t.Errorf("Choose(%q) = %s, %v; want %s", spec, b.Stamp, err, want)
		}
	}
	for _, spec := range []string{"20261102T030000Z.dump.zst", "2026-10-01T00:00:00Z", "nothing.dump"} {
		if _, err := Choose(good, spec); err == nil {
			t.Errorf("Choose(%q) found a backup", spec)
		}
	}
	if _, err := Choose(nil, "latest"); err == nil {
		t.Error("Choose on no backups")
	}
}
