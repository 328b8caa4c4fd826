package main

// End-to-end tests of mode: backup, through the real binary, against a
// local folder and a real S3 server (MinIO), with the real pg_dump and
// scripts in its place that fail the ways pg_dump fails.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
	"github.com/pgfleet/pgfleet/internal/storage/s3"
	"github.com/pgfleet/pgfleet/internal/testenv/minio"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// dest is one destination the backup and restore tests run against: a
// local folder or a prefix of a MinIO bucket.
type dest struct {
	name    string
	in      inputs   // destination and S3 inputs
	env     []string // AWS credentials, as a workflow's env gives them
	store   storage.Store
	srv     *minio.Server // nil for a folder
	prefix  string        // S3: the prefix in the bucket
	secrets []string      // credentials that must never appear
}

var sharedMinio struct {
	once sync.Once
	srv  *minio.Server
	err  error
}

// minioServer is the MinIO server the tests share (tests that stop the
// server start their own). Its watchdog removes it when the test process
// ends.
func minioServer(t *testing.T) *minio.Server {
	t.Helper()
	sharedMinio.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), minio.BuildTimeout)
		defer cancel()
		sharedMinio.srv, sharedMinio.err = minio.Start(ctx, minio.Options{})
	})
	if sharedMinio.err != nil {
		t.Fatal(sharedMinio.err)
	}
	return sharedMinio.srv
}

func fileDest(t *testing.T) dest {
	t.Helper()
	root := filepath.Join(t.TempDir(), "backups dir") // a space: percent-encoded in the URL
	s, err := dir.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return dest{name: "file", in: inputs{"destination": "file://" + strings.ReplaceAll(root, " ", "%20")}, store: s}
}

func s3Dest(t *testing.T, srv *minio.Server) dest { return s3DestIn(t, srv, srv.Bucket) }

// s3DestIn is a fresh prefix of bucket on srv.
func s3DestIn(t *testing.T, srv *minio.Server, bucket string) dest {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	prefix := "tenants-" + hex.EncodeToString(b)
	s, err := s3.New(context.Background(), s3.Options{
		Bucket: bucket, Prefix: prefix, Endpoint: srv.Endpoint, ForcePathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return dest{
		name: "s3",
		in: inputs{
			"destination":         "s3://" + bucket + "/" + prefix + "/",
			"s3-endpoint":         srv.Endpoint,
			"s3-force-path-style": "true",
			"aws-region":          minio.Region,
		},
		env:     []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey},
		store:   s,
		srv:     srv,
		prefix:  prefix,
		secrets: []string{srv.SecretKey, srv.AccessKey},
	}
}

// eachDest runs one test body against a folder and against MinIO.
func eachDest(t *testing.T, fn func(t *testing.T, d dest)) {
	t.Run("file", func(t *testing.T) { fn(t, fileDest(t)) })
	t.Run("s3", func(t *testing.T) { fn(t, s3Dest(t, minioServer(t))) })
}

// with merges input sets; later ones win.
func with(sets ...inputs) inputs {
	out := inputs{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// modeReport is the JSON report of a backup or restore run.
type modeReport struct {
	Mode      string         `json:"mode"`
	Cancelled bool           `json:"cancelled"`
	Counts    map[string]int `json:"counts"`
	Tenants   []struct {
		tenantRecord
		Object       string   `json:"object"`
		Manifest     string   `json:"manifest"`
		Bytes        int64    `json:"bytes"`
		DumpBytes    int64    `json:"dump_bytes"`
		Rows         int64    `json:"rows"`
		Pruned       []string `json:"pruned"`
		Debris       []string `json:"debris_removed"`
		Aborted      []string `json:"uploads_aborted"`
		RestoredRows int64    `json:"restored_rows"`
		ExpectedRows int64    `json:"expected_rows"`
		Verified     bool     `json:"sha256_verified"`
		Differing    int      `json:"tables_differing"`
		Tables       []struct {
			Table    string `json:"table"`
			Expected int64  `json:"expected"`
			Restored int64  `json:"restored"`
		} `json:"tables"`
	} `json:"tenants"`
}

func (m modeReport) tenant(t *testing.T, id string) int {
	t.Helper()
	for i, tn := range m.Tenants {
		if tn.ID == id {
			return i
		}
	}
	t.Fatalf("tenant %s not in the report", id)
	return -1
}

func parseModeReport(t *testing.T, r run, mode string) modeReport {
	t.Helper()
	return readReport[modeReport](t, r, mode)
}

// runBackup runs mode: backup of the database-urls list to d.
func runBackup(t *testing.T, d dest, urls []string, extra inputs, env ...string) (run, modeReport) {
	t.Helper()
	in := with(inputs{"mode": "backup", "database-urls": strings.Join(urls, "\n")}, d.in, extra)
	r := runPgfleet(t, in, append(slices.Clone(d.env), env...)...)
	return r, parseModeReport(t, r, "backup")
}

// objects lists what the destination holds under prefix.
func objects(t *testing.T, d dest, prefix string) []string {
	t.Helper()
	objs, err := d.store.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// pendingUploads lists unfinished uploads under prefix: temp files in a
// folder, multipart uploads in the bucket (all of them since MinIO
// started: MinIO takes a listing prefix for an exact key).
func pendingUploads(t *testing.T, d dest, prefix string) []string {
	t.Helper()
	ups, err := d.store.Pending(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range ups {
		keys = append(keys, u.Key)
	}
	return keys
}

// pendingExact asks the server for unfinished uploads of exactly key (the
// only listing MinIO answers for uploads begun before it restarted).
func pendingExact(t *testing.T, d dest, key string) int {
	t.Helper()
	if d.srv == nil {
		return len(pendingUploads(t, d, key))
	}
	out, err := d.srv.Client().ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{
		Bucket: aws.String(d.srv.Bucket), Prefix: aws.String(d.prefix + "/" + key)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

// assertNothingFor checks a tenant's folder holds no dump, no manifest and
// no unfinished upload.
func assertNothingFor(t *testing.T, d dest, folder string) {
	t.Helper()
	if objs := objects(t, d, folder+"/"); len(objs) > 0 {
		t.Errorf("%s: objects left in %s: %v", d.name, folder, objs)
	}
	if ups := pendingUploads(t, d, folder+"/"); len(ups) > 0 {
		t.Errorf("%s: unfinished uploads left in %s: %v", d.name, folder, ups)
	}
}

// readManifest reads one manifest from the destination.
func readManifest(t *testing.T, d dest, key string) *archive.Manifest {
	t.Helper()
	m, err := archive.ReadManifest(context.Background(), d.store, key)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seed gives a tenant a schema with awkward corners and i-dependent data:
// foreign keys, a quoted schema and table, an empty table, a partitioned
// table, an unlogged table, a large object, a sequence, a materialized
// view.
func seed(t *testing.T, url string, i int) {
	t.Helper()
	execSQL(t, url, fmt.Sprintf(`
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL DEFAULT '2026-01-01');
INSERT INTO customers (name) SELECT 'customer ' || g || ' ''quoted'' ' || repeat('x', g %% 7) FROM generate_series(1, %[1]d) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id), total numeric(12,2), note text, tags text[]);
INSERT INTO orders (customer_id, total, note, tags) SELECT 1 + g %% %[1]d, g * 1.25, CASE WHEN g %% 5 = 0 THEN NULL ELSE md5(g::text) || E'\ttab\nnewline\\backslash' END, ARRAY['a', g::text]
  FROM generate_series(1, %[2]d) g;
CREATE INDEX ON orders (customer_id);
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case.Table" (k int PRIMARY KEY, v jsonb);
INSERT INTO "Odd Schema"."Mixed Case.Table" SELECT g, jsonb_build_object('g', g, 's', 'é ü 日本') FROM generate_series(1, %[3]d) g;
CREATE TABLE empty_table (x int);
CREATE TABLE events (id int, day int NOT NULL) PARTITION BY RANGE (day);
CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (50);
CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (50) TO (100);
INSERT INTO events SELECT g, g %% 100 FROM generate_series(1, %[4]d) g;
CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v bytea);
INSERT INTO cache SELECT 'k' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 20) g;
CREATE SEQUENCE invoice_no START 1000;
SELECT setval('invoice_no', 1000 + %[5]d);
CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id;
SELECT lo_from_bytea(0, 'a large object');
`, 50+i*7, 300+i*31, 10+i, 100+i*3, i))
}

// digests are every table's row count and a checksum of its rows, in the
// database at url.
func digests(t *testing.T, url string) map[string]string {
	t.Helper()
	out := map[string]string{}
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		tables, err := pgtools.ListTables(ctx, conn)
		if err != nil {
			return err
		}
		for _, tb := range tables {
			var n int64
			var sum string
			id := pgx.Identifier{tb.Schema, tb.Name}.Sanitize()
			err := conn.QueryRow(ctx, "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM ONLY "+id+" t").Scan(&n, &sum)
			if err != nil {
				return err
			}
			out[archive.QualifiedName(tb.Schema, tb.Name)] = fmt.Sprintf("%d rows, md5 %s", n, sum)
		}
		var seq int64
		if err := conn.QueryRow(ctx, "SELECT last_value FROM invoice_no").Scan(&seq); err == nil {
			out["sequence invoice_no"] = fmt.Sprint(seq)
		}
		var los int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata").Scan(&los); err == nil {
			out["large objects"] = fmt.Sprint(los)
		}
		return nil
	})
	return out
}

// realPgDump is PostgreSQL's own pg_dump on this machine.
func realPgDump(t *testing.T) string {
	t.Helper()
	binDir, err := pgcluster.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(binDir, "pg_dump")
	if _, err := os.Stat(p); err != nil {
		return "/usr/bin/pg_dump"
	}
	return p
}

// script writes an executable shell script.
func script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/bash\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// tenantList is the database-urls lines of dbs, each named by its
// database.
func tenantList(dbs []pgcluster.TenantDB) []string {
	var out []string
	for _, db := range dbs {
		out = append(out, db.Name+"="+db.URL)
	}
	return out
}

func passwords(dbs []pgcluster.TenantDB) []string {
	var out []string
	for _, db := range dbs {
		out = append(out, db.Password)
	}
	return out
}

// One tenant's pg_dump writes 12 MiB and exits 1, another's backend is
// terminated in the middle of its COPY: neither leaves an object, a
// manifest or an unfinished (multipart) upload, and the other tenants are
// backed up. pg_dump never sees a connection string or a password on its
// command line.
func TestBackupFailuresLeaveNothing(t *testing.T) {
	dbs := newTenants(t, "bkfail", 4)
	for i, db := range dbs {
		seed(t, db.URL, i)
	}
	bad, killed := dbs[1], dbs[2]
	// Big enough that its COPY takes a while and its stream is well past
	// the first 8 MiB part.
	execSQL(t, killed.URL, "CREATE TABLE big (id int, a text); INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) || md5(random()::text) FROM generate_series(1, 700000) g")
	argsLog := filepath.Join(t.TempDir(), "args.log")
	pgDump := script(t, "pg_dump", fmt.Sprintf(`case "$1" in --version) exec %[1]s --version;; esac
echo "$@" >> %[2]s
env | grep -c '^PGPASSWORD=' >> %[2]s
if [ "$PGDATABASE" = %[3]s ]; then
  head -c 12582912 /dev/urandom
  echo "pg_dump: error: simulated failure part-way" >&2
  exit 1
fi
exec %[1]s "$@"
`, realPgDump(t), argsLog, bad.Name))

	eachDest(t, func(t *testing.T, d dest) {
		os.Remove(argsLog)
		// Once the killed tenant's upload is under way (S3: a multipart
		// upload with its first part; a folder: the temp file), its
		// backend is terminated in the middle of the COPY.
		killedFolder := archive.Folder(killed.Name, killed.Name) + "/"
		stop := terminator(t, killed.Name, "pgfleet-pg_dump", "COPY %", true, func() bool {
			ups, err := d.store.Pending(context.Background(), killedFolder)
			return err == nil && len(ups) > 0
		})
		r, rep := runBackup(t, d, tenantList(dbs), inputs{"pg-dump-path": pgDump, "concurrency": "4"})
		if n := stop(); n == 0 {
			t.Fatal("the test never terminated the dump's backend")
		}
		mustCode(t, r, 1)
		for _, db := range dbs {
			rec := rep.Tenants[rep.tenant(t, db.Name)]
			folder := archive.Folder(db.Name, db.Name)
			switch db.Name {
			case bad.Name:
				if rec.Status != "failed" || !strings.Contains(rec.Error, "simulated failure part-way") || !strings.Contains(rec.Error, "exit status 1") {
					t.Errorf("failing pg_dump: %s %q", rec.Status, rec.Error)
				}
				assertNothingFor(t, d, folder)
			case killed.Name:
				if rec.Status != "failed" || !strings.Contains(rec.Error, "pg_dump failed") {
					t.Errorf("terminated backend: %s %q", rec.Status, rec.Error)
				}
				assertNothingFor(t, d, folder)
				if d.srv != nil && pendingExact(t, d, rec.Object) != 0 {
					t.Errorf("an unfinished upload of %s is left", rec.Object)
				}
				t.Logf("%s: terminated after %s of pg_dump output: %s", d.name, archive.HumanBytes(rec.DumpBytes), rec.Error)
			default:
				if rec.Status != "succeeded" {
					t.Errorf("%s: %s %s", db.Name, rec.Status, rec.Error)
					continue
				}
				keys := objects(t, d, folder+"/")
				if len(keys) != 2 || keys[0] != rec.Object || keys[1] != rec.Manifest {
					t.Errorf("%s holds %v, want the dump %s and its manifest", folder, keys, rec.Object)
				}
			}
		}
		if d.srv != nil {
			if ups := pendingUploads(t, d, ""); len(ups) > 0 {
				t.Errorf("unfinished uploads left: %v", ups)
			}
		}
		log, _ := os.ReadFile(argsLog)
		for _, db := range dbs {
			if strings.Contains(string(log), db.Password) || strings.Contains(string(log), "postgres") || strings.Contains(string(log), "127.0.0.1") {
				t.Errorf("pg_dump's command line carries connection details:\n%s", log)
			}
		}
		if !strings.Contains(string(log), "--snapshot=") {
			t.Errorf("pg_dump was not given the exported snapshot:\n%s", log)
		}
		assertNoLeak(t, r, append(passwords(dbs), d.secrets...)...)
		t.Logf("%s: run took %s", d.name, r.elapsed.Round(time.Millisecond))
	})
}

// The S3 server dies in the middle of an upload and comes back: the
// multipart upload is aborted once it is reachable again, and no object,
// manifest or unfinished upload is left.
func TestBackupS3StoppedMidUpload(t *testing.T) {
	srv := minio.StartForTest(t)
	d := s3Dest(t, srv)
	dbs := newTenants(t, "bkdown", 1)
	execSQL(t, dbs[0].URL, "CREATE TABLE big (id int, a text); INSERT INTO big SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 400000) g")
	gate := filepath.Join(t.TempDir(), "go-on")
	// The first 9 MiB pass (a multipart upload starts), then the stream
	// waits for the test to have stopped the server.
	pgDump := script(t, "pg_dump", fmt.Sprintf(`case "$1" in --version) exec %[1]s --version;; esac
set -o pipefail
%[1]s "$@" | { head -c 9437184; while [ ! -f %[2]s ]; do sleep 0.05; done; cat; }
`, realPgDump(t), gate))
	began := time.Now()
	in := with(inputs{"mode": "backup", "database-urls": strings.Join(tenantList(dbs), "\n"), "pg-dump-path": pgDump, "compression": "none"}, d.in)
	cmd, stdout, stderr, rdir := start(t, in, d.env...)
	deadline := time.Now().Add(60 * time.Second)
	for len(pendingUploads(t, d, "")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no multipart upload started:\n%s", stdout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the first part is stored
	srv.Stop()
	os.WriteFile(gate, nil, 0o644)
	// Down long enough that the next part fails for good (the SDK retries
	// a few times), then back: the abort, retried meanwhile, goes through.
	time.Sleep(12 * time.Second)
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := finish(t, cmd, stdout, stderr, rdir, began)
	mustCode(t, r, 1)
	rep := parseModeReport(t, r, "backup")
	rec := rep.Tenants[0]
	if rec.Status != "failed" || rec.Object == "" {
		t.Fatalf("tenant: %s %q (object %q)", rec.Status, rec.Error, rec.Object)
	}
	assertNothingFor(t, d, archive.Folder(dbs[0].Name, dbs[0].Name))
	if n := pendingExact(t, d, rec.Object); n != 0 {
		t.Fatalf("%d unfinished uploads of %s left after the server came back", n, rec.Object)
	}
	t.Logf("error: %s", rec.Error)
	assertNoLeak(t, r, append(passwords(dbs), d.secrets...)...)
}

// Retention, against both stores, in one run of three tenants:
//   - recent: backups of various ages; those past retention-days go, the
//     rest stay; incomplete backups older than a day and a stale
//     unfinished upload are removed; a younger incomplete one, foreign
//     objects and a sub-folder are left alone;
//   - old: every backup past retention-days: keep-last keeps the newest;
//   - failing: its new backup fails, so nothing at all is pruned.
func TestBackupRetention(t *testing.T) {
	dbs := newTenants(t, "bkret", 3)
	for i, db := range dbs {
		seed(t, db.URL, i)
	}
	recent, old, failing := dbs[0], dbs[1], dbs[2]
	pgDump := script(t, "pg_dump", fmt.Sprintf(`case "$1" in --version) exec %[1]s --version;; esac
if [ "$PGDATABASE" = %[2]s ]; then echo "pg_dump: error: simulated" >&2; exit 1; fi
exec %[1]s "$@"
`, realPgDump(t), failing.Name))
	now := time.Now().UTC()
	ago := func(d time.Duration) string { return archive.Stamp(now.Add(-d)) }
	const day = 24 * time.Hour

	eachDest(t, func(t *testing.T, d dest) {
		ctx := context.Background()
		put := func(key, body string) {
			t.Helper()
			if _, err := d.store.Put(ctx, key, strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
		}
		good := func(folder string, age time.Duration) string {
			s := ago(age)
			put(folder+"/"+s+".dump.zst", "dump")
			put(folder+"/"+s+".manifest.json", "{}")
			return s
		}
		rf, of, ff := archive.Folder(recent.Name, recent.Name), archive.Folder(old.Name, old.Name), archive.Folder(failing.Name, failing.Name)
		r1, r2, r5 := good(rf, day+time.Hour), good(rf, 2*day), good(rf, 5*day)
		r9, r10, r30 := good(rf, 9*day), good(rf, 10*day), good(rf, 30*day)
		put(rf+"/"+ago(2*day+time.Hour)+".dump.zst", "debris: no manifest")
		put(rf+"/"+ago(3*day)+".manifest.json", "debris: no dump")
		youngDebris := rf + "/" + ago(2*time.Hour) + ".dump.zst"
		put(youngDebris, "maybe a run in progress")
		foreign := []string{rf + "/notes.txt", rf + "/" + ago(40*day) + ".dump.zst.bak", rf + "/archive/" + ago(40*day) + ".dump.zst"}
		for _, k := range foreign {
			put(k, "not pgfleet's")
		}
		staleUpload := rf + "/" + ago(3*day) + ".dump.zst"
		orphan(t, d, staleUpload)
		o20, o30, o40, o50 := good(of, 20*day), good(of, 30*day), good(of, 40*day), good(of, 50*day)
		var failingKeys []string
		for _, age := range []time.Duration{20 * day, 30 * day, 40 * day, 50 * day} {
			s := good(ff, age)
			failingKeys = append(failingKeys, ff+"/"+s+".dump.zst", ff+"/"+s+".manifest.json")
		}
		put(ff+"/"+ago(5*day)+".dump.zst", "debris, but this tenant fails")

		r, rep := runBackup(t, d, tenantList(dbs), inputs{"pg-dump-path": pgDump, "retention-days": "7", "keep-last": "3"})
		mustCode(t, r, 1)

		rec := rep.Tenants[rep.tenant(t, recent.Name)]
		if rec.Status != "succeeded" {
			t.Fatalf("recent: %s %s", rec.Status, rec.Error)
		}
		newStamp := strings.TrimSuffix(filepath.Base(rec.Object), ".dump.zst")
		if !slices.Equal(rec.Pruned, []string{r9, r10, r30}) {
			t.Errorf("recent: pruned %v, want %v", rec.Pruned, []string{r9, r10, r30})
		}
		if len(rec.Debris) != 2 || len(rec.Aborted) != 1 || rec.Aborted[0] != staleUpload {
			t.Errorf("recent: debris %v, aborted %v", rec.Debris, rec.Aborted)
		}
		want := []string{}
		for _, s := range []string{r5, r2, r1, newStamp} {
			want = append(want, rf+"/"+s+".dump.zst", rf+"/"+s+".manifest.json")
		}
		want = append(want, youngDebris)
		want = append(want, foreign...)
		slices.Sort(want)
		if got := objects(t, d, rf+"/"); !slices.Equal(got, want) {
			t.Errorf("recent folder holds\n%v\nwant\n%v", got, want)
		}
		if n := pendingExact(t, d, staleUpload); n != 0 {
			t.Errorf("the stale upload of %s is still pending", staleUpload)
		}

		rec = rep.Tenants[rep.tenant(t, old.Name)]
		if rec.Status != "succeeded" || !slices.Equal(rec.Pruned, []string{o40, o50}) {
			t.Errorf("old: %s, pruned %v, want %v (keep-last keeps %s and %s)", rec.Status, rec.Pruned, []string{o40, o50}, o20, o30)
		}
		if n := len(objects(t, d, of+"/")); n != 6 {
			t.Errorf("old folder holds %d objects, want the new backup and two old ones (6)", n)
		}

		rec = rep.Tenants[rep.tenant(t, failing.Name)]
		if rec.Status != "failed" || len(rec.Pruned)+len(rec.Debris) != 0 {
			t.Errorf("failing: %s, pruned %v, debris %v", rec.Status, rec.Pruned, rec.Debris)
		}
		got := objects(t, d, ff+"/")
		for _, k := range failingKeys {
			if !slices.Contains(got, k) {
				t.Errorf("failing tenant lost %s", k)
			}
		}
		if len(got) != len(failingKeys)+1 {
			t.Errorf("failing folder holds %v", got)
		}
		if !strings.Contains(r.summary, "Retention") || !strings.Contains(r.summary, r9) {
			t.Errorf("the summary does not say what was pruned:\n%s", r.summary)
		}
	})
}

// orphan leaves an unfinished upload of key, the way a killed run leaves
// one: a multipart upload with a part in the bucket, a temp file in a
// folder.
func orphan(t *testing.T, d dest, key string) {
	t.Helper()
	ctx := context.Background()
	if d.srv == nil {
		root := d.store.(*dir.Store).Root()
		p := filepath.Join(root, filepath.FromSlash(key))
		os.MkdirAll(filepath.Dir(p), 0o755)
		tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".pgfleet-partial-123456")
		if err := os.WriteFile(tmp, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	c := d.srv.Client()
	full := d.prefix + "/" + key
	out, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(d.srv.Bucket), Key: aws.String(full)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String(d.srv.Bucket), Key: aws.String(full), UploadId: out.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader("half")}); err != nil {
		t.Fatal(err)
	}
}

// A pg_dump older than the server fails each tenant clearly before any
// dump, and nothing is stored.
func TestBackupPgDumpOlderThanServer(t *testing.T) {
	dbs := newTenants(t, "bkold", 2)
	pgDump := script(t, "pg_dump", `case "$1" in --version) echo "pg_dump (PostgreSQL) 13.4"; exit 0;; esac
echo "must not be run" >&2; exit 99
`)
	d := fileDest(t)
	r, rep := runBackup(t, d, tenantList(dbs), inputs{"pg-dump-path": pgDump})
	mustCode(t, r, 1)
	for _, rec := range rep.Tenants {
		if rec.Status != "failed" || !strings.Contains(rec.Error, "pg_dump 13.4") || !strings.Contains(rec.Error, "older than the server (PostgreSQL 15") {
			t.Errorf("%s: %s %q", rec.ID, rec.Status, rec.Error)
		}
	}
	if objs := objects(t, d, ""); len(objs) > 0 {
		t.Errorf("objects stored: %v", objs)
	}
	t.Logf("error: %s", rep.Tenants[0].Error)
}

// SIGTERM in the middle of uploads: the run ends within GitHub's 10
// seconds, and leaves no object, no manifest and no unfinished upload.
func TestBackupSigterm(t *testing.T) {
	dbs := newTenants(t, "bkterm", 3)
	pgDump := script(t, "pg_dump", fmt.Sprintf(`case "$1" in --version) exec %s --version;; esac
head -c 10485760 /dev/urandom
sleep 60
`, realPgDump(t)))
	eachDest(t, func(t *testing.T, d dest) {
		in := with(inputs{"mode": "backup", "database-urls": strings.Join(tenantList(dbs), "\n"), "pg-dump-path": pgDump, "compression": "none"}, d.in)
		// SIGTERM once every tenant's upload is under way.
		r, took := runAndTerminate(t, in, d.env, 60*time.Second, "uploads never started", func() bool { return len(pendingUploads(t, d, "")) >= len(dbs) })
		mustCode(t, r, 1)
		rep := parseModeReport(t, r, "backup")
		if !rep.Cancelled || rep.Counts["cancelled"] != len(dbs) {
			t.Errorf("report: cancelled %v, counts %v", rep.Cancelled, rep.Counts)
		}
		if objs := objects(t, d, ""); len(objs) > 0 {
			t.Errorf("objects left: %v", objs)
		}
		if ups := pendingUploads(t, d, ""); len(ups) > 0 {
			t.Errorf("unfinished uploads left: %v", ups)
		}
		t.Logf("%s: exited %s after SIGTERM", d.name, took.Round(time.Millisecond))
	})
}

// Input problems stop the run before any tenant is touched (exit 2), all
// reported at once.
func TestBackupInvalidInput(t *testing.T) {
	dbs := newTenants(t, "bkbad", 1)
	pooled := "pooled=postgres://u:secretpw1@ep-cool-1-pooler.eu-central-1.aws.neon.tech/db"
	r := runPgfleet(t, inputs{
		"mode": "backup", "database-urls": dbs[0].Name + "=" + dbs[0].URL + "\n" + pooled,
		"destination": "ftp://x", "compression": "zstd", "compression-level": "30", "pg-dump-args": "-t users --no-owner",
		"encryption-recipient": "age1notakey", "format": "tar", "retention-days": "0", "pg-dump-path": "/nonexistent/pg_dump",
	})
	mustCode(t, r, 2)
	for _, want := range []string{"input destination", "input compression-level", "input pg-dump-args", "input encryption-recipient", "input format", "input retention-days", "input pg-dump-path", "input database-urls", "-pooler"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, r.stderr)
		}
	}
	assertNoLeak(t, r, dbs[0].Password, "secretpw1")
}
