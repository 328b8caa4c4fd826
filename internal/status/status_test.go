package status

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/migrations"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
)

func objs(lines ...string) []Object {
	var out []Object
	for _, l := range lines {
		kind, rest, _ := strings.Cut(l, " ")
		name, def, _ := strings.Cut(rest, "=")
		out = append(out, Object{Kind: kind, Name: name, Def: def})
	}
	return out
}

func TestDifferencesNameEachObject(t *testing.T) {
	ref := objs("table users=rp", "column users.note=character varying(200)", "index users_email_idx=CREATE INDEX ...")
	here := objs("table users=rp", "column users.note=text", "table tmp_fix=rp")
	got := differences(here, ref, 212)
	want := []string{
		"column users.note: text here, character varying(200) in 212 tenants",
		"index users_email_idx missing (present in 212 tenants)",
		"table tmp_fix present only here",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("differences:\n%q\nwant\n%q", got, want)
	}
}

func TestFindDriftReferenceIsBiggestGroupPerVersion(t *testing.T) {
	common := objs("table users=rp")
	extra := objs("table users=rp", "index users_name_idx=CREATE INDEX users_name_idx")
	mk := func(version string, o []Object) *Detail {
		return &Detail{Version: version, objects: o, Fingerprint: fingerprint(o)}
	}
	ds := []*Detail{mk("2", common), mk("2", extra), mk("2", common), mk("1", extra)}
	groups := findDrift(ds)
	if len(groups) != 3 {
		t.Fatalf("%d groups, want 3 (version 1; version 2's two schemas)", len(groups))
	}
	if ds[0].Drifted || ds[2].Drifted || ds[3].Drifted {
		t.Fatal("the biggest group at a version, and a version's only group, are the reference")
	}
	if !ds[1].Drifted || ds[1].Reference != ds[0].Fingerprint || !slices.Equal(ds[1].Drift, []string{"index users_name_idx present only here"}) {
		t.Fatalf("drifted tenant: %+v", ds[1])
	}
	if fingerprint(common) == fingerprint(extra) {
		t.Fatal("different schemas share a fingerprint")
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"26h": 26 * time.Hour, "2d": 48 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1h", "yesterday", "0d"} {
		if _, err := parseAge(bad); err == nil {
			t.Errorf("parseAge(%q) accepted", bad)
		}
	}
}

func TestCompareVersionsFindsGapsAndUnknown(t *testing.T) {
	d := t.TempDir()
	for _, name := range []string{"001_a.sql", "002_b.sql", "003_c.sql"} {
		writeFile(t, d+"/"+name, "-- migrate:up\nSELECT 1;\n-- migrate:down\n")
	}
	set, err := migrations.Load(d)
	if err != nil {
		t.Fatal(err)
	}
	j := NewJob(Options{Set: set})
	var det Detail
	j.compareVersions(map[string]bool{"001": true, "003": true, "009": true}, &det)
	if det.Version != "009" || !slices.Equal(det.Pending, []string{"002_b.sql"}) || !slices.Equal(det.Gaps, []string{"002_b.sql"}) || !slices.Equal(det.Unknown, []string{"009"}) {
		t.Fatalf("detail %+v", det)
	}
}

// TestReadBackupsFromAFolder: the newest backup with a manifest that
// matches its dump is the newest good one; a dump without a manifest, or
// with one that names another size, is incomplete.
func TestReadBackupsFromAFolder(t *testing.T) {
	ctx := context.Background()
	s, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	put := func(folder string, at time.Time, manifestBytes int64) {
		key := archive.DumpKey(folder, at, "dump.zst")
		if _, err := s.Put(ctx, key, bytes.NewReader([]byte("0123456789"))); err != nil {
			t.Fatal(err)
		}
		if manifestBytes < 0 {
			return
		}
		m := archive.Manifest{Version: archive.ManifestVersion, Format: archive.Custom, Compression: archive.Zstd, Object: key, Bytes: manifestBytes, SHA256: strings.Repeat("0", 64)}
		b, _ := m.Marshal()
		if _, err := s.Put(ctx, archive.ManifestKey(key), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	put("acme", now.Add(-50*time.Hour), 10)
	put("acme", now.Add(-30*time.Hour), 10)
	put("acme", now.Add(-2*time.Hour), 99) // its manifest names another size
	put("acme", now.Add(-time.Hour), -1)   // no manifest yet
	put("gone", now.Add(-time.Hour), 10)

	j := NewJob(Options{Store: s, MaxBackupAge: 26 * time.Hour, Now: func() time.Time { return now }})
	st, err := j.readBackups(ctx, "acme", "acme", now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Good != 2 || st.Incomplete != 2 || !st.Stale || st.AgeSeconds != 30*3600 || !strings.Contains(st.Problem, "99") {
		t.Fatalf("backups %+v", st)
	}
	if dep := j.bucket.departed(); len(dep) != 1 || dep[0][0] != "gone" {
		t.Fatalf("departed %v, want gone", dep)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAgeLimitReadsAsWritten(t *testing.T) {
	for d, want := range map[time.Duration]string{26 * time.Hour: "26h", 48 * time.Hour: "2d", 90 * time.Minute: "1h30m", 45 * time.Second: "45s"} {
		if got := ageLimit(d); got != want {
			t.Errorf("ageLimit(%s) = %q, want %q", d, got, want)
		}
	}
}
