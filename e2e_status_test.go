package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
)

// statusReport is the JSON report of a status run.
type statusReport struct {
	Counts  map[string]int `json:"counts"`
	Tenants []struct {
		tenantRecord
		Version     string   `json:"version"`
		Pending     []string `json:"pending"`
		Fingerprint string   `json:"fingerprint"`
		Drifted     bool     `json:"drifted"`
		Drift       []string `json:"drift"`
		Unreachable string   `json:"unreachable"`
		Backups     *struct {
			Newest     string `json:"newest"`
			Good       int    `json:"good"`
			Incomplete int    `json:"incomplete"`
			Stale      bool   `json:"stale"`
		} `json:"backups"`
	} `json:"tenants"`
}

// tenantState is what a tenant holds that status must never change: its
// catalog (every relation, column, index and constraint), its migrations
// rows, and the rows written to it.
func tenantState(t *testing.T, url string) string {
	t.Helper()
	var state string
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT
			(SELECT md5(string_agg(c.oid::text || c.relname || c.relkind::text, ',' ORDER BY c.oid)) FROM pg_class c)
			|| (SELECT md5(string_agg(a.attrelid::text || a.attname || a.atttypid::text, ',' ORDER BY a.attrelid, a.attnum)) FROM pg_attribute a)
			|| (SELECT md5(string_agg(oid::text, ',' ORDER BY oid)) FROM pg_constraint)
			|| (SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations)
			|| (SELECT ' writes ' || (tup_inserted + tup_updated + tup_deleted) FROM pg_stat_database WHERE datname = current_database())`).Scan(&state)
	})
	return state
}

// TestStatusVersionsAndDrift: 30 tenants, 25 at the latest version, 3 one
// behind, 2 hand-altered at the latest: the 3 pending and the 2 drifted
// are named, each drift with the objects that differ, and no tenant
// changed.
func TestStatusVersionsAndDrift(t *testing.T) {
	f := newFleet(t, 30, neonapi.Config{})
	all := baseVersions(t)
	latest := all[len(all)-1]
	// All at the one-behind version first, then all but 3 to the latest.
	behind := t.TempDir()
	for _, name := range []string{"20240101120000_create_users.sql", "20240101120100_create_projects.sql"} {
		b, err := os.ReadFile(filepath.Join("testdata/migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(behind, name), b, 0o644)
	}
	mustCode(t, runPgfleet(t, neonInputs(f, behind)), 0)
	var behindIDs []string
	for _, tn := range f.Tenants[:3] {
		behindIDs = append(behindIDs, tn.ProjectID)
	}
	in := neonInputs(f, "testdata/migrations")
	in["exclude-projects"] = strings.Join(behindIDs, ",")
	mustCode(t, runPgfleet(t, in), 0)
	extraIndex, changedType := f.Tenants[3], f.Tenants[4]
	execSQL(t, extraIndex.DB.URL, "CREATE INDEX users_name_idx ON users (name)")
	execSQL(t, changedType.DB.URL, "ALTER TABLE tasks ALTER COLUMN title TYPE varchar(200)")

	before := map[string]string{}
	for _, tn := range f.Tenants {
		before[tn.ProjectID] = tenantState(t, tn.DB.URL)
	}

	in = neonInputs(f, "testdata/migrations")
	in["mode"] = "status"
	r := runPgfleet(t, in)
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"pending": "3", "drifted": "2", "up-to-date": "25", "unreachable": "0"})
	rep := readReport[statusReport](t, r, "status")
	byID := map[string]int{}
	for i, rec := range rep.Tenants {
		byID[rec.ID] = i
		if rec.Fingerprint == "" {
			t.Fatalf("%s has no fingerprint", rec.ID)
		}
	}
	for _, id := range behindIDs {
		rec := rep.Tenants[byID[id]]
		if rec.Version != all[1] || !slices.Equal(rec.Pending, []string{"20240101120200_create_tasks.sql"}) || rec.Drifted {
			t.Fatalf("one behind: %+v", rec)
		}
	}
	wantDrift := map[string]string{
		extraIndex.ProjectID:  "index users_name_idx present only here",
		changedType.ProjectID: "column tasks.title: character varying(200) not null here, text not null in 25 tenants",
	}
	for id, want := range wantDrift {
		rec := rep.Tenants[byID[id]]
		if !rec.Drifted || rec.Version != latest || !slices.Equal(rec.Drift, []string{want}) {
			t.Fatalf("%s: drift %q, want [%q]", id, rec.Drift, want)
		}
		if !strings.Contains(strings.ReplaceAll(r.summary, `\_`, "_"), want) { // the summary escapes Markdown
			t.Fatalf("summary lacks %q:\n%s", want, r.summary)
		}
	}
	if !strings.Contains(r.summary, "Schema versions") || !strings.Contains(r.summary, "Schema drift") {
		t.Fatalf("summary:\n%s", r.summary)
	}

	// The same fleet with the thresholds: exactly the 3 pending and the 2
	// drifted fail, each named.
	in["fail-on-pending"], in["fail-on-drift"] = "true", "true"
	r = runPgfleet(t, in)
	mustCode(t, r, 1)
	rep = readReport[statusReport](t, r, "status")
	var failed []string
	for _, rec := range rep.Tenants {
		if rec.Status == "failed" {
			failed = append(failed, rec.ID)
		}
	}
	wantFailed := append(slices.Clone(behindIDs), extraIndex.ProjectID, changedType.ProjectID)
	slices.Sort(failed)
	slices.Sort(wantFailed)
	if !slices.Equal(failed, wantFailed) {
		t.Fatalf("failed %v, want %v", failed, wantFailed)
	}
	if plain := strings.ReplaceAll(r.summary, `\_`, "_"); !strings.Contains(plain, "users_name_idx") || !strings.Contains(plain, "fail-on-pending") {
		t.Fatalf("summary does not name the failures:\n%s", r.summary)
	}

	for _, tn := range f.Tenants {
		if after := tenantState(t, tn.DB.URL); after != before[tn.ProjectID] {
			t.Fatalf("%s changed: %s -> %s", tn.ProjectID, before[tn.ProjectID], after)
		}
	}
	assertNoLeak(t, r, secrets(f)...)

	in["canary"] = "1"
	mustCode(t, runPgfleet(t, in), 2)

	// Backups only, through Neon: the tenants' folders are found by their
	// project names and ids, and no connection string is asked for (that
	// costs an API call per tenant and is never used).
	d := fileDest(t)
	first := f.Tenants[0]
	putBackup(t, d, archive.Folder(first.Name, first.ProjectID), time.Now().Add(-time.Hour), true)
	urisBefore := connectionURIRequests(f.Neon.Requests())
	bin := with(d.in, inputs{"mode": "status", "neon-api-key": f.APIKey, "neon-api-url": f.Neon.URL(), "migrations-dir": "none", "max-backup-age": "26h"})
	r = runPgfleet(t, bin)
	mustCode(t, r, 1)
	wantOutputs(t, r, map[string]string{"stale-backups": "29", "up-to-date": "1", "failed": "29"})
	if n := connectionURIRequests(f.Neon.Requests()) - urisBefore; n != 0 {
		t.Fatalf("a backups-only status run asked Neon for %d connection strings", n)
	}
	for _, tn := range f.Tenants {
		if after := tenantState(t, tn.DB.URL); after != before[tn.ProjectID] {
			t.Fatalf("%s changed: %s -> %s", tn.ProjectID, before[tn.ProjectID], after)
		}
	}
}

func connectionURIRequests(reqs []neonapi.RequestRecord) int {
	n := 0
	for _, req := range reqs {
		if strings.HasSuffix(req.Path, "/connection_uri") {
			n++
		}
	}
	return n
}

// TestStatusUnreachable: a tenant that cannot be connected to is reported
// and counted; with fail-on-unreachable it fails the run, the others not.
func TestStatusUnreachable(t *testing.T) {
	f := newFleet(t, 1, neonapi.Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close() // nothing listens there: connections are refused
	urls := "up=" + f.Tenants[0].DB.URL + "\ndown=postgres://app:unreachable-secret-77@" + closedAddr + "/down?sslmode=disable&connect_timeout=2"
	mustCode(t, runPgfleet(t, neonInputs(f, "testdata/migrations")), 0)
	in := inputs{"mode": "status", "database-urls": urls, "migrations-dir": "testdata/migrations"}
	r := runPgfleet(t, in)
	mustCode(t, r, 0)
	wantOutputs(t, r, map[string]string{"unreachable": "1", "up-to-date": "1"})
	in["fail-on-unreachable"] = "true"
	r = runPgfleet(t, in)
	mustCode(t, r, 1)
	rep := readReport[statusReport](t, r, "status")
	for _, rec := range rep.Tenants {
		if (rec.Status == "failed") != (rec.ID == "down") {
			t.Fatalf("%s: %s %s", rec.ID, rec.Status, rec.Error)
		}
	}
	assertNoLeak(t, r, append(f.Passwords(), "unreachable-secret-77")...)
}

// connectionCounter is a TCP listener standing in for every tenant's
// server: it counts the connections it is offered.
func connectionCounter(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = &atomic.Int64{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), accepted
}

// putBackup writes a backup's objects as backup mode does: the dump, and
// (when good) a manifest naming its key and size.
func putBackup(t *testing.T, d dest, folder string, at time.Time, good bool) {
	t.Helper()
	ctx := context.Background()
	body := bytes.Repeat([]byte("dump"), 256)
	key := archive.DumpKey(folder, at, archive.Ext(archive.Custom, archive.Zstd, false))
	if _, err := d.store.Put(ctx, key, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if !good {
		return
	}
	m := archive.Manifest{Version: archive.ManifestVersion, Tool: "pgfleet test", Tenant: folder, Format: archive.Custom, Compression: archive.Zstd,
		Object: key, Bytes: int64(len(body)), SHA256: strings.Repeat("ab", 32), StartedAt: at, FinishedAt: at}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.Put(ctx, archive.ManifestKey(key), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// TestStatusBackups: tenants with fresh, old, incomplete-only and no
// backups, and the folder of a departed tenant (migrations-dir left at its
// default, which the workspace lacks); max-backup-age fails
// exactly the stale ones, and with only a destination no tenant database
// sees a connection.
func TestStatusBackups(t *testing.T) {
	eachDest(t, func(t *testing.T, d dest) {
		addr, accepted := connectionCounter(t)
		now := time.Now().UTC()
		putBackup(t, d, "fresh", now.Add(-30*time.Hour), true)
		putBackup(t, d, "fresh", now.Add(-time.Hour), true)
		putBackup(t, d, "fresh", now.Add(-10*time.Minute), false) // being written
		putBackup(t, d, "old", now.Add(-72*time.Hour), true)
		putBackup(t, d, "incomplete", now.Add(-time.Hour), false)
		putBackup(t, d, "departed", now.Add(-time.Hour), true)
		var urls []string
		for _, name := range []string{"fresh", "old", "incomplete", "none"} {
			urls = append(urls, fmt.Sprintf("%s=postgres://app:pw@%s/%s?sslmode=disable", name, addr, name))
		}
		in := with(d.in, inputs{"mode": "status", "database-urls": strings.Join(urls, "\n")})

		r := runPgfleet(t, in, d.env...)
		mustCode(t, r, 0)
		wantOutputs(t, r, map[string]string{"stale-backups": "2", "up-to-date": "2"})
		rep := readReport[statusReport](t, r, "status")
		got := map[string]string{}
		for _, rec := range rep.Tenants {
			b := rec.Backups
			got[rec.ID] = fmt.Sprintf("good=%d incomplete=%d stale=%v newest=%v", b.Good, b.Incomplete, b.Stale, b.Newest != "")
		}
		want := map[string]string{
			"fresh":      "good=2 incomplete=1 stale=false newest=true",
			"old":        "good=1 incomplete=0 stale=false newest=true",
			"incomplete": "good=0 incomplete=1 stale=true newest=false",
			"none":       "good=0 incomplete=0 stale=true newest=false",
		}
		for id, w := range want {
			if got[id] != w {
				t.Fatalf("%s: %s, want %s", id, got[id], w)
			}
		}
		if !strings.Contains(r.summary, "departed") || !strings.Contains(r.summary, "not in the fleet") {
			t.Fatalf("summary lacks the departed folder:\n%s", r.summary)
		}

		// Part of the fleet: every other folder would look departed, so
		// none is listed.
		part := with(in, inputs{"projects": "fresh"})
		r = runPgfleet(t, part, d.env...)
		mustCode(t, r, 0)
		if strings.Contains(r.summary, "departed") || r.outputs["total"] != "1" {
			t.Fatalf("a run over part of the fleet listed departed folders:\n%s", r.summary)
		}

		in["max-backup-age"] = "26h"
		r = runPgfleet(t, in, d.env...)
		mustCode(t, r, 1)
		rep = readReport[statusReport](t, r, "status")
		var failed []string
		for _, rec := range rep.Tenants {
			if rec.Status == "failed" {
				failed = append(failed, rec.ID+": "+rec.Error)
			}
		}
		slices.Sort(failed)
		if len(failed) != 3 || !strings.HasPrefix(failed[0], "incomplete: no good backup") ||
			!strings.HasPrefix(failed[1], "none: no good backup") || !strings.HasPrefix(failed[2], "old: newest good backup is 3d0h old") {
			t.Fatalf("failed: %q", failed)
		}
		wantOutputs(t, r, map[string]string{"stale-backups": "3"})
		if n := accepted.Load(); n != 0 {
			t.Fatalf("a status run given only a destination opened %d connections to tenants", n)
		}
		assertNoLeak(t, r, d.secrets...)
	})
}
