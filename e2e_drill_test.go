package main

// End-to-end tests of backup's restore drill (drill-target-url), through
// the real binary: new backups restored into a scratch database and
// checked, a backup corrupted after its upload caught by the drill of the
// same run, and a scratch target that is a tenant refused before anything.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/testenv"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// drillRecord is a backup report's tenant with its "drill" field.
type drillRecord struct {
	ID            string   `json:"id"`
	Status        string   `json:"status"`
	Error         string   `json:"error"`
	Object        string   `json:"object"`
	Rows          int64    `json:"rows"`
	Pruned        []string `json:"pruned"`
	RetentionNote string   `json:"retention_note"`
	Drill         *struct {
		Target       string  `json:"target"`
		Object       string  `json:"object"`
		Manifest     string  `json:"manifest"`
		OK           bool    `json:"ok"`
		Error        string  `json:"error"`
		Verified     bool    `json:"sha256_verified"`
		ExpectedRows int64   `json:"expected_rows"`
		RestoredRows int64   `json:"restored_rows"`
		Differing    int     `json:"tables_differing"`
		Seconds      float64 `json:"restore_seconds"`
		Tables       []struct {
			Table    string `json:"table"`
			Expected int64  `json:"expected"`
			Restored int64  `json:"restored"`
		} `json:"tables"`
	} `json:"drill"`
}

func drillRecords(t *testing.T, r run) map[string]drillRecord {
	t.Helper()
	var rep struct {
		Tenants []drillRecord `json:"tenants"`
	}
	if err := json.Unmarshal([]byte(r.files["pgfleet-backup-report.json"]), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, tail(r.stdout, 3000))
	}
	out := map[string]drillRecord{}
	for _, tn := range rep.Tenants {
		out[tn.ID] = tn
	}
	return out
}

// summarySection is the summary from the heading title to the next
// heading, with Markdown's escaped underscores read back.
func summarySection(summary, title string) string {
	i := strings.Index(summary, "### "+title)
	if i < 0 {
		return ""
	}
	rest := summary[i+4:]
	if j := strings.Index(rest, "\n#"); j >= 0 {
		rest = rest[:j]
	}
	return strings.ReplaceAll(rest, `\_`, "_") // names as written, not Markdown-escaped
}

// Three of four new backups, chosen at random, are restored one after the
// other into a scratch database that starts with an earlier drill's
// leftovers (tables, and the marker a drill puts on the database): each comes
// back with every table's rows, the summary's "Restore drill" section and
// the report say so, the outputs name the three, and afterwards the
// scratch database holds exactly the last one drilled (row checksums,
// sequence and large object compared with its source). The scratch
// password is never printed.
func TestBackupDrillThreeTenants(t *testing.T) {
	dbs := newTenants(t, "drill", 4)
	sources := map[string]map[string]string{}
	for i, db := range dbs {
		seed(t, db.URL, i)
		sources[db.Name] = digests(t, db.URL)
	}
	scratch := freshDB(t, dbName("drillscratch"))
	execSQL(t, scratch.URL, `CREATE TABLE leftover (x int); CREATE SCHEMA old; CREATE TABLE old.t (y int); SELECT lo_from_bytea(0, 'old');
COMMENT ON DATABASE `+scratch.Name+` IS 'pgfleet restore-drill scratch database: left by an earlier run'`)
	d := s3Dest(t, minioServer(t))
	r, _ := runBackup(t, d, tenantList(dbs), inputs{"drill-target-url": scratch.URL, "drill-count": "3", "concurrency": "2"})
	mustCode(t, r, 0)
	assertNoLeak(t, r, append(append(passwords(dbs), scratch.Password), d.secrets...)...)
	assertMasked(t, r, scratch.Password)

	drilled := strings.Split(r.outputs["drilled"], "\n")
	if len(drilled) != 3 || r.outputs["drill-failed"] != "" {
		t.Fatalf("outputs drilled %q, drill-failed %q: want 3 tenants, none failed", r.outputs["drilled"], r.outputs["drill-failed"])
	}
	recs := drillRecords(t, r)
	sec := summarySection(r.summary, "Restore drill")
	if !strings.Contains(sec, "3 of the 4 tenants backed up in this run, chosen at random") || !strings.Contains(sec, "127.0.0.1/"+scratch.Name) {
		t.Errorf("Restore drill section:\n%s", sec)
	}
	for _, id := range drilled {
		rec, ok := recs[id]
		if !ok || rec.Drill == nil {
			t.Fatalf("%s: no drill in the report", id)
		}
		dr := rec.Drill
		if !dr.OK || !dr.Verified || dr.Differing != 0 || dr.Seconds <= 0 || dr.Object != rec.Object || dr.RestoredRows != rec.Rows || dr.ExpectedRows != rec.Rows || len(dr.Tables) == 0 {
			t.Errorf("%s: drill %+v (backup %s, %d rows)", id, dr, rec.Object, rec.Rows)
		}
		for _, tb := range dr.Tables {
			if tb.Expected != tb.Restored {
				t.Errorf("%s: table %s: %d rows restored, %d expected", id, tb.Table, tb.Restored, tb.Expected)
			}
		}
		// One row per drilled tenant: its backup, "N/N tables", its rows.
		want := fmt.Sprintf("%s | %d/%d tables | %s rows |", filepath.Base(rec.Object), len(dr.Tables), len(dr.Tables), thousandsOf(rec.Rows))
		if !strings.Contains(sec, id) || !strings.Contains(sec, want) {
			t.Errorf("%s: the section has no row with %q:\n%s", id, want, sec)
		}
	}
	for id, rec := range recs {
		if !slices.Contains(drilled, id) && rec.Drill != nil {
			t.Errorf("%s was not drilled but has a drill record", id)
		}
	}
	// The scratch database: the last drilled backup, nothing else.
	last := drilled[len(drilled)-1]
	got := digests(t, scratch.URL)
	if fmt.Sprint(got) != fmt.Sprint(sources[last]) {
		t.Errorf("the scratch database after the drill differs from %s:\n got %v\nwant %v", last, got, sources[last])
	}
	if c := dbComment(t, scratch.URL); !strings.HasPrefix(c, "pgfleet restore-drill scratch database") {
		t.Errorf("the scratch database's comment is %q: want the drill's marker kept", c)
	}
}

// dbComment is the comment on url's database.
func dbComment(t *testing.T, url string) (c string) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = current_database()`).Scan(&c)
	})
	return c
}

func thousandsOf(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// A backup whose object is changed after its upload, before the drill of
// the same run: the folder is a file:// destination and the pg_dump that
// runs for the second tenant (a wrapper around the real one, given as
// pg-dump-path like any user's) first flips one byte of the first
// tenant's stored dump. Concurrency 1 makes the order certain: the first
// tenant's dump and manifest are complete before the second starts. That
// is a real corruption after upload (the same bytes a bucket's bit rot or
// a tampering hand would leave), with no hook in pgfleet. Both are
// drilled: the corrupted one fails with its key and the checksum mismatch,
// the run exits 1 and names it in drill-failed and failed-projects; the
// other's drill passes. With keep-last 1, retention (which waits for the
// drill) prunes the intact tenant's older backup but keeps the corrupted
// one's: it is that tenant's last good backup. The scratch database, empty
// and unmarked before, carries the drill's marker after.
func TestBackupDrillCorruptedAfterUpload(t *testing.T) {
	dbs := newTenants(t, "drillbad", 2)
	for i, db := range dbs {
		seed(t, db.URL, i+3)
	}
	scratch := freshDB(t, dbName("drillbadscratch"))
	d := fileDest(t)
	root := strings.ReplaceAll(strings.TrimPrefix(d.in["destination"], "file://"), "%20", " ")
	real := realPgDump(t)
	oldStamp := archive.Stamp(time.Now().UTC().Add(-10 * 24 * time.Hour))
	wrapper := script(t, "pg_dump", fmt.Sprintf(`
if [ "$PGDATABASE" = %[1]q ]; then
  f=$(find %[2]q -path '*/%[3]s/*' -name '*.dump.zst' ! -name '%[5]s.*' | head -1)
  size=$(stat -c %%s "$f")
  off=$(( size * 2 / 3 ))
  b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
  printf "$(printf '\\%%03o' $(( b ^ 1 )))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
fi
exec %[4]q "$@"
`, dbs[1].Name, root, archive.Folder(dbs[0].Name, dbs[0].Name), real, oldStamp))
	// pg_restore and psql are found beside pg_dump.
	for _, tool := range []string{"pg_restore", "psql"} {
		if err := os.Symlink(filepath.Join(filepath.Dir(real), tool), filepath.Join(filepath.Dir(wrapper), tool)); err != nil {
			t.Fatal(err)
		}
	}
	// An older good backup in each folder, past retention-days (the
	// wrapper leaves it alone).
	for _, db := range dbs {
		for _, ext := range []string{".dump.zst", ".manifest.json"} {
			if _, err := d.store.Put(t.Context(), archive.Folder(db.Name, db.Name)+"/"+oldStamp+ext, strings.NewReader("older")); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, _ := runBackup(t, d, tenantList(dbs), inputs{"drill-target-url": scratch.URL, "drill-count": "2", "concurrency": "1", "pg-dump-path": wrapper,
		"keep-last": "1", "retention-days": "1"})
	mustCode(t, r, 1)
	assertNoLeak(t, r, append(passwords(dbs), scratch.Password)...)
	recs := drillRecords(t, r)
	bad, good := recs[dbs[0].Name], recs[dbs[1].Name]
	if bad.Drill == nil || good.Drill == nil {
		t.Fatalf("both tenants should be drilled: %+v %+v", bad, good)
	}
	if bad.Status != "failed" || bad.Drill.OK || !strings.Contains(bad.Error, "restore drill: the backup "+bad.Object+" could not be restored") ||
		!strings.Contains(bad.Error, "does not match its manifest") {
		t.Errorf("corrupted backup: status %s, error %q", bad.Status, bad.Error)
	}
	if good.Status != "succeeded" || !good.Drill.OK || good.Drill.RestoredRows != good.Rows {
		t.Errorf("intact backup: status %s, drill %+v", good.Status, good.Drill)
	}
	if len(bad.Pruned) != 0 || !strings.Contains(bad.RetentionNote, "not pruned: the new backup failed its restore drill") ||
		len(objects(t, d, archive.Folder(dbs[0].Name, dbs[0].Name)+"/")) != 4 {
		t.Errorf("corrupted backup's tenant: pruned %v, note %q, folder %v: want its older backup kept", bad.Pruned, bad.RetentionNote, objects(t, d, archive.Folder(dbs[0].Name, dbs[0].Name)+"/"))
	}
	if !slices.Equal(good.Pruned, []string{oldStamp}) || len(objects(t, d, archive.Folder(dbs[1].Name, dbs[1].Name)+"/")) != 2 {
		t.Errorf("intact backup's tenant: pruned %v, folder %v: want the older backup pruned after the drill", good.Pruned, objects(t, d, archive.Folder(dbs[1].Name, dbs[1].Name)+"/"))
	}
	if !strings.Contains(summarySection(r.summary, "Retention"), "not pruned: the new backup failed its restore drill") {
		t.Errorf("Retention section:\n%s", summarySection(r.summary, "Retention"))
	}
	if c := dbComment(t, scratch.URL); !strings.HasPrefix(c, "pgfleet restore-drill scratch database") {
		t.Errorf("the scratch database's comment is %q: want the drill's marker", c)
	}
	if r.outputs["drill-failed"] != dbs[0].Name || r.outputs["failed-projects"] != dbs[0].Name {
		t.Errorf("drill-failed %q, failed-projects %q: want %s", r.outputs["drill-failed"], r.outputs["failed-projects"], dbs[0].Name)
	}
	sec := summarySection(r.summary, "Restore drill")
	if !strings.Contains(sec, "❌") || !strings.Contains(sec, "does not match its manifest") || !strings.Contains(sec, filepath.Base(bad.Object)) || !strings.Contains(sec, "1 failed") {
		t.Errorf("Restore drill section:\n%s", sec)
	}
	// The drill's error, which fails the run after every tenant was done,
	// is in the summary's banner, the report and the verdict.
	if !strings.Contains(r.summary, "**Failed once every tenant was done:**") || !strings.Contains(r.summary, "## ❌ pgfleet backup: 2 tenants, 1 failed") {
		t.Errorf("summary's verdict and banner:\n%s", tail(r.summary, 3000))
	}
	head := readReport[struct {
		FinishError string `json:"finish_error"`
	}](t, r, "backup")
	if !strings.Contains(head.FinishError, filepath.Base(bad.Object)) {
		t.Errorf("report's finish_error %q: want the corrupted backup named", head.FinishError)
	}
	// The corruption was in the store: the object has its size but not
	// the manifest's checksum.
	m := readManifest(t, d, archive.ManifestKey(bad.Object))
	obj := readObject(t, d, bad.Object)
	if sum := sha256.Sum256(obj); int64(len(obj)) != m.Bytes || hex.EncodeToString(sum[:]) == m.SHA256 {
		t.Errorf("the object has %d bytes (manifest %d) and sha256 %x (manifest %s): want one byte flipped", len(obj), m.Bytes, sum, m.SHA256)
	}
}

// readObject is the whole object at key.
func readObject(t *testing.T, d dest, key string) []byte {
	t.Helper()
	rc, err := d.store.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A scratch target that is one of the fleet's databases, however its URL
// is written (another host name for this machine, no sslmode, another
// user's credentials), is refused before any tenant is touched: exit 2
// naming drill-target-url, no object in the destination, no session
// opened on any tenant. So is a database that holds tables and was never
// a drill's scratch database (a database of the fleet this run does not
// cover, say): its tables stay. So are a drill-count without a target, a
// drill-count that is no whole number, a drill of encrypted backups
// without an identity, and a target that cannot be reached.
func TestBackupDrillRefusedTargets(t *testing.T) {
	dbs := newTenants(t, "drillrefuse", 2)
	scratch := freshDB(t, dbName("drillrefscratch"))
	someones := freshDB(t, dbName("drillrefothers"))
	execSQL(t, someones.URL, `CREATE TABLE customers (id int); INSERT INTO customers VALUES (1), (2)`)
	respelled := strings.Replace(strings.TrimSuffix(dbs[1].URL, "?sslmode=disable"), "127.0.0.1", "localhost", 1)
	respelled = strings.Replace(respelled, dbs[1].Role+":"+dbs[1].Password, scratch.Role+":"+scratch.Password, 1)
	before := listSessions(t, dbs)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	recipient := id.Recipient().String()
	for _, c := range []struct {
		name  string
		in    inputs
		input string // named in the error
		want  string
	}{
		{"tenant's own URL", inputs{"drill-target-url": dbs[0].URL}, "drill-target-url", "is the database of tenant " + dbs[0].Name},
		{"tenant respelled", inputs{"drill-target-url": respelled}, "drill-target-url", "is the database of tenant " + dbs[1].Name},
		{"tables, never a scratch database", inputs{"drill-target-url": someones.URL}, "drill-target-url", "holds tables (public.customers) and was never a pgfleet drill's scratch database: give an empty database"},
		{"count without target", inputs{"drill-count": "2"}, "drill-count", "set without drill-target-url"},
		{"count zero", inputs{"drill-target-url": scratch.URL, "drill-count": "0"}, "drill-count", "want a whole number"},
		{"encrypted without identity", inputs{"drill-target-url": scratch.URL, "encryption-recipient": recipient}, "encryption-identity", "required for a restore drill of encrypted backups"},
		{"unreachable", inputs{"drill-target-url": strings.Replace(scratch.URL, fmt.Sprintf(":%d/", cluster.Port()), ":1/", 1)}, "drill-target-url", "cannot be reached"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := fileDest(t)
			r, _ := runBackup(t, d, tenantList(dbs), c.in)
			mustCode(t, r, 2)
			if !strings.Contains(r.stdout+r.stderr, c.input) || !strings.Contains(r.stdout+r.stderr, c.want) {
				t.Errorf("want %s: %q in the error\nstdout:\n%s\nstderr:\n%s", c.input, c.want, tail(r.stdout, 2000), tail(r.stderr, 2000))
			}
			if objs := objects(t, d, ""); len(objs) > 0 {
				t.Errorf("objects written: %v", objs)
			}
			assertNoLeak(t, r, append(passwords(dbs), scratch.Password, someones.Password)...)
		})
	}
	if n := userTables(t, someones.URL); n != 1 || dbComment(t, someones.URL) != "" {
		t.Errorf("the database with tables refused as a target: %d tables, comment %q: want it untouched", n, dbComment(t, someones.URL))
	}
	if after := listSessions(t, dbs); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("sessions on the tenants: before %v, after %v: a refused run touched a tenant", before, after)
	}
	if n := userTables(t, scratch.URL); n != 0 {
		t.Errorf("the scratch database holds %d tables", n)
	}
}

// listSessions is pg_stat_database.sessions of each database, read as the
// rehearsal tests read a fleet's.
func listSessions(t *testing.T, dbs []pgcluster.TenantDB) map[string]int64 {
	t.Helper()
	f := &testenv.Fleet{Cluster: cluster}
	for _, db := range dbs {
		f.Tenants = append(f.Tenants, testenv.Tenant{DB: db})
	}
	return tenantSessions(t, f)
}

// Tenants from the Neon API: their connection strings are known only as
// each tenant starts, so Prepare cannot tell a scratch target that is one
// of them. Two safeties stand in the way:
//   - the victim's database holds tables and was never a drill's scratch
//     database: Prepare refuses it (exit 2 naming drill-target-url),
//     nothing written, the database untouched;
//   - an empty tenant's database passes that check; the drill compares the
//     target with every tenant's resolved URL before it writes and refuses:
//     the run fails (exit 1) with Finish's error naming drill-target-url
//     and the tenant, the backups stay succeeded (nothing in
//     failed-projects or drill-failed, the section says "not run"),
//     nothing is pruned, and the database is untouched (not even marked).
func TestBackupDrillNeonTenantAsTarget(t *testing.T) {
	f := newFleet(t, 2, neonapi.Config{})
	seed(t, f.Tenants[0].DB.URL, 0)
	victim := f.Tenants[1]
	backup := func(d dest) run {
		t.Helper()
		in := with(inputs{"mode": "backup", "neon-api-key": f.APIKey, "neon-api-url": f.Neon.URL(), "drill-target-url": victim.DB.URL, "drill-count": "2"}, d.in)
		r := runPgfleet(t, in)
		assertNoLeak(t, r, fleetSecrets(f)...)
		return r
	}

	d := fileDest(t)
	r := backup(d)
	mustCode(t, r, 1)
	recs := drillRecords(t, r)
	for _, tn := range f.Tenants {
		rec := recs[tn.ProjectID]
		if rec.Status != "succeeded" || rec.Drill != nil || rec.Error != "" || !strings.Contains(rec.RetentionNote, "not pruned: the restore drill did not run") {
			t.Errorf("%s: status %s, error %q, drill %+v, retention note %q", tn.ProjectID, rec.Status, rec.Error, rec.Drill, rec.RetentionNote)
		}
	}
	head := readReport[struct {
		FinishError string `json:"finish_error"`
	}](t, r, "backup")
	if !strings.HasPrefix(head.FinishError, "restore drill not run: drill-target-url is the database of tenant") || !strings.Contains(head.FinishError, victim.ProjectID) {
		t.Errorf("finish_error %q", head.FinishError)
	}
	if r.outputs["failed-projects"] != "" || r.outputs["drill-failed"] != "" || r.outputs["drilled"] != "" {
		t.Errorf("outputs failed-projects %q, drill-failed %q, drilled %q: want none", r.outputs["failed-projects"], r.outputs["drill-failed"], r.outputs["drilled"])
	}
	if sec := summarySection(r.summary, "Restore drill"); !strings.Contains(sec, "Not run: refused") || !strings.Contains(sec, "not run: drill-target-url is the database of tenant") {
		t.Errorf("Restore drill section:\n%s", sec)
	}
	if n, c := userTables(t, victim.DB.URL), dbComment(t, victim.DB.URL); n != 0 || c != "" {
		t.Errorf("the tenant given as drill target: %d tables, comment %q: want it untouched", n, c)
	}

	seed(t, victim.DB.URL, 1)
	before := digests(t, victim.DB.URL)
	d = fileDest(t)
	r = backup(d)
	mustCode(t, r, 2)
	if !strings.Contains(r.stderr, "drill-target-url") || !strings.Contains(r.stderr, "was never a pgfleet drill's scratch database") {
		t.Errorf("stderr:\n%s", tail(r.stderr, 2000))
	}
	if objs := objects(t, d, ""); len(objs) > 0 {
		t.Errorf("objects written: %v", objs)
	}
	if after := digests(t, victim.DB.URL); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the tenant given as drill target changed:\nbefore %v\nafter  %v", before, after)
	}
}

// An encrypted backup is drilled with encryption-identity (the whole
// age-keygen file); an identity of none of the recipients is refused
// before anything (exit 2). The identity is never printed.
func TestBackupDrillEncrypted(t *testing.T) {
	dbs := newTenants(t, "drillenc", 1)
	seed(t, dbs[0].URL, 2)
	scratch := freshDB(t, dbName("drillencscratch"))
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	keyFile := "# created: 2026-11-22T03:00:00Z\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	d := fileDest(t)
	r, _ := runBackup(t, d, tenantList(dbs), inputs{"drill-target-url": scratch.URL, "encryption-recipient": id.Recipient().String(), "encryption-identity": keyFile})
	mustCode(t, r, 0)
	assertNoLeak(t, r, id.String(), scratch.Password)
	rec := drillRecords(t, r)[dbs[0].Name]
	if rec.Drill == nil || !rec.Drill.OK || !strings.HasSuffix(rec.Drill.Object, ".age") || rec.Drill.RestoredRows != rec.Rows {
		t.Errorf("drill of the encrypted backup: %+v", rec.Drill)
	}
	d = fileDest(t)
	r, _ = runBackup(t, d, tenantList(dbs), inputs{"drill-target-url": scratch.URL, "encryption-recipient": id.Recipient().String(), "encryption-identity": other.String()})
	mustCode(t, r, 2)
	if !strings.Contains(r.stderr, "encryption-identity") || !strings.Contains(r.stderr, "none of encryption-recipient's keys") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if objs := objects(t, d, ""); len(objs) > 0 {
		t.Errorf("objects written: %v", objs)
	}
	assertNoLeak(t, r, other.String(), scratch.Password)
}
