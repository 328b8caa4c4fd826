// Package archive is what a backup is, as backup writes it and restore
// reads it: where a tenant's backups live and how their objects are named,
// which of them make a good backup, the manifest written beside each dump,
// and the compression and encryption streams. Opening the store is
// storage/destination's; running pg_dump, pg_restore and psql is
// pgtools'. It imports no mode.
package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// StampFormat is the UTC timestamp that starts every object name, e.g.
// 20261122T030000Z: names sort by time, and retention reads a backup's age
// from it (not from LastModified, which a copy or a restore of the bucket
// changes).
const StampFormat = "20060102T150405Z"

// ManifestSuffix ends a manifest's name: <stamp>.manifest.json.
const ManifestSuffix = ".manifest.json"

// maxSlug is the longest slug of a project name.
const maxSlug = 40

// Slug is a project name lower-cased, every run of characters outside a-z
// and 0-9 turned into one '-', trimmed of '-', at most 40 characters.
func Slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	s := b.String()
	if len(s) > maxSlug {
		s = strings.TrimRight(s[:maxSlug], "-")
	}
	return s
}

// plainID matches ids that can name a folder as they are (Neon's project
// ids: "wispy-fire-12345678").
var plainID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// idPart is the id as it appears in a folder name: as is when it is plain,
// else its slug and 8 hex digits of its SHA-256, so two ids that slug alike
// ("a.b", "a_b") still get folders of their own.
func idPart(id string) string {
	if plainID.MatchString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	h := hex.EncodeToString(sum[:4])
	if s := Slug(id); s != "" {
		return s + "-" + h
	}
	return h
}

// Folder is a tenant's folder under the destination:
// "<slug of the name>-<project id>", e.g. "acme-corp-wispy-fire-12345678".
// A tenant whose name is its id (database-urls) or whose name slugs to
// nothing gets the id part alone.
func Folder(name, id string) string {
	ip := idPart(id)
	s := Slug(name)
	if s == "" || name == id {
		return ip
	}
	return s + "-" + ip
}

// FolderMatchesID reports whether a folder name belongs to the project id,
// whatever the project was called when the folder was written: a renamed
// project keeps its old backups under its old slug.
func FolderMatchesID(folder, id string) bool {
	ip := idPart(id)
	return folder == ip || strings.HasSuffix(folder, "-"+ip)
}

// Stamp formats t (in UTC, to the second) as an object name's timestamp.
func Stamp(t time.Time) string { return t.UTC().Format(StampFormat) }

// Format is pg_dump's output format.
type Format string

const (
	Custom Format = "custom" // pg_dump -Fc, restored with pg_restore
	Plain  Format = "plain"  // SQL, restored with psql
)

// Compression is the stream compression pgfleet applies.
type Compression string

const (
	Zstd Compression = "zstd"
	Gzip Compression = "gzip"
	None Compression = "none"
)

// Ext is the extension of a dump's object name, after the stamp and its
// dot: "dump" or "sql", then ".zst" or ".gz", then ".age" when encrypted.
func Ext(f Format, c Compression, encrypted bool) string {
	ext := "dump"
	if f == Plain {
		ext = "sql"
	}
	switch c {
	case Zstd:
		ext += ".zst"
	case Gzip:
		ext += ".gz"
	}
	if encrypted {
		ext += ".age"
	}
	return ext
}

// DumpKey is the key of a tenant's dump taken at t.
func DumpKey(folder string, t time.Time, ext string) string {
	return folder + "/" + Stamp(t) + "." + ext
}

// ManifestKey is the key of the manifest of the dump at dumpKey.
func ManifestKey(dumpKey string) string {
	dir, file := path.Split(dumpKey)
	stamp, _, _ := strings.Cut(file, ".")
	return dir + stamp + ManifestSuffix
}

// Kind tells a dump from a manifest.
type Kind int

const (
	KindDump Kind = iota + 1
	KindManifest
)

// Name is an object name pgfleet writes, parsed.
type Name struct {
	Stamp       string
	Time        time.Time
	Kind        Kind
	Format      Format
	Compression Compression
	Encrypted   bool
}

var namePattern = regexp.MustCompile(`^([0-9]{8}T[0-9]{6}Z)\.(manifest\.json|(dump|sql)(\.zst|\.gz)?(\.age)?)$`)

// ParseName reads an object's file name (the part after the folder). ok is
// false for any name pgfleet does not write: such objects are never
// touched.
func ParseName(file string) (n Name, ok bool) {
	m := namePattern.FindStringSubmatch(file)
	if m == nil {
		return Name{}, false
	}
	t, err := time.Parse(StampFormat, m[1])
	if err != nil {
		return Name{}, false
	}
	n = Name{Stamp: m[1], Time: t}
	if m[2] == "manifest.json" {
		n.Kind = KindManifest
		return n, true
	}
	n.Kind = KindDump
	n.Format = Custom
	if m[3] == "sql" {
		n.Format = Plain
	}
	switch m[4] {
	case ".zst":
		n.Compression = Zstd
	case ".gz":
		n.Compression = Gzip
	default:
		n.Compression = None
	}
	n.Encrypted = m[5] != ""
	return n, true
}

// ParseStamp reads a timestamp in the keys' form (20261122T030000Z).
func ParseStamp(s string) (time.Time, error) {
	t, err := time.Parse(StampFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want a time like %s", StampFormat)
	}
	return t, nil
}

// HumanBytes is n for people: 512 B, 1.5 KiB, 20.3 MiB, 1.2 GiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
