package main

// End-to-end tests of mode: restore (and of backup and restore together),
// through the real binary, against a local folder and MinIO.

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
	"github.com/pgfleet/pgfleet/internal/testenv"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// runRestore runs mode: restore with the given inputs against d.
func runRestore(t *testing.T, d dest, in inputs, env ...string) (run, modeReport) {
	t.Helper()
	r := runPgfleet(t, with(inputs{"mode": "restore"}, d.in, in), append(slices.Clone(d.env), env...)...)
	var rep modeReport
	if _, ok := r.files["pgfleet-restore-report.json"]; ok {
		rep = parseModeReport(t, r, "restore")
	}
	return r, rep
}

// freshDB is a new empty database with its own owner.
func freshDB(t *testing.T, name string) pgcluster.TenantDB {
	t.Helper()
	db := cluster.TenantForTest(t, name)
	t.Cleanup(func() { cluster.DropTenant(context.Background(), db) })
	return db
}

var dbSeq struct {
	sync.Mutex
	n int
}

func dbName(prefix string) string {
	dbSeq.Lock()
	defer dbSeq.Unlock()
	dbSeq.n++
	return fmt.Sprintf("%s_%04d", prefix, dbSeq.n)
}

func fleetSecrets(f *testenv.Fleet) []string { return append(f.Passwords(), f.APIKey) }

// The fleet test: 20 tenants with data, backed up through the Neon
// emulator with concurrency 8; then each restored by project id into a
// fresh database, and every table compared with its source: row count and
// a checksum of the rows (and the sequence and the large object).
func TestBackupRestoreTwentyTenants(t *testing.T) {
	f := newFleet(t, 20, neonapi.Config{})
	for i, tn := range f.Tenants {
		seed(t, tn.DB.URL, i)
	}
	sources := map[string]map[string]string{}
	for _, tn := range f.Tenants {
		sources[tn.ProjectID] = digests(t, tn.DB.URL)
	}
	neon := inputs{"neon-api-key": f.APIKey, "neon-api-url": f.Neon.URL()}

	eachDest(t, func(t *testing.T, d dest) {
		r := runPgfleet(t, with(inputs{"mode": "backup", "concurrency": "8"}, neon, d.in), d.env...)
		mustCode(t, r, 0)
		rep := parseModeReport(t, r, "backup")
		if rep.Counts["succeeded"] != 20 {
			t.Fatalf("counts %v", rep.Counts)
		}
		var total int64
		for _, tn := range f.Tenants {
			rec := rep.Tenants[rep.tenant(t, tn.ProjectID)]
			folder := archive.Folder(tn.Name, tn.ProjectID)
			if !strings.HasPrefix(rec.Object, folder+"/") || !strings.HasSuffix(rec.Object, ".dump.zst") {
				t.Errorf("%s: object %s not in %s/", tn.Name, rec.Object, folder)
			}
			m := readManifest(t, d, rec.Manifest)
			raw, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range append(fleetSecrets(f), d.secrets...) {
				if strings.Contains(string(raw), secret) {
					t.Fatalf("%s: a credential is in the manifest", tn.Name)
				}
			}
			if m.ProjectID != tn.ProjectID || m.Tenant != tn.Name || m.Bytes != rec.Bytes || len(m.SHA256) != 64 || len(m.Tables) != 7 ||
				m.ServerVersion == "" || m.PgDumpVersion == "" || m.Snapshot == "" || m.FinishedAt.Before(m.StartedAt) {
				t.Errorf("%s: manifest %+v", tn.Name, m)
			}
			total += rec.Bytes
		}
		if r.outputs["bytes"] != fmt.Sprint(total) {
			t.Errorf("output bytes = %q, want %d", r.outputs["bytes"], total)
		}
		for _, want := range []string{"| size |", "| throughput |", "| object |", "| pruned |", "dump.zst", "Retention", "compression ratio"} {
			if !strings.Contains(r.summary, want) {
				t.Errorf("summary lacks %q:\n%s", want, tail(r.summary, 3000))
			}
		}
		t.Logf("%s: 20 tenants backed up in %s, %s stored", d.name, r.elapsed.Round(time.Millisecond), archive.HumanBytes(total))
		assertNoLeak(t, r, append(fleetSecrets(f), d.secrets...)...)
		assertMasked(t, r, d.secrets...)

		var mu sync.Mutex
		var restoreTimes []time.Duration
		t.Run("restore", func(t *testing.T) {
			for _, tn := range f.Tenants {
				t.Run(tn.ProjectID, func(t *testing.T) {
					t.Parallel()
					target := freshDB(t, dbName("rs"))
					r, rep := runRestore(t, d, with(neon, inputs{"restore-project": tn.ProjectID, "restore-target-url": target.URL}))
					mustCode(t, r, 0)
					rec := rep.Tenants[0]
					if !rec.Verified || rec.Differing != 0 || rec.RestoredRows != rec.ExpectedRows || len(rec.Tables) != 7 {
						t.Errorf("restore record: %+v", rec)
					}
					if r.outputs["restored-rows"] != fmt.Sprint(rec.RestoredRows) || r.outputs["bytes"] != fmt.Sprint(rec.Bytes) {
						t.Errorf("outputs %v", r.outputs)
					}
					got := digests(t, target.URL)
					if !maps.Equal(got, sources[tn.ProjectID]) {
						for k, v := range sources[tn.ProjectID] {
							if got[k] != v {
								t.Errorf("%s: source %s, restored %s", k, v, got[k])
							}
						}
						t.Fatalf("restored tables differ from the source")
					}
					if !strings.Contains(r.summary, "rows expected") || !strings.Contains(r.summary, `"Odd Schema"."Mixed Case.Table"`) {
						t.Errorf("summary lacks the tables:\n%s", r.summary)
					}
					assertNoLeak(t, r, append(fleetSecrets(f), append(d.secrets, target.Password)...)...)
					mu.Lock()
					restoreTimes = append(restoreTimes, r.elapsed)
					mu.Unlock()
				})
			}
		})
		slices.Sort(restoreTimes)
		if len(restoreTimes) > 0 {
			t.Logf("%s: 20 restores, each %s to %s (median %s)", d.name, restoreTimes[0].Round(time.Millisecond),
				restoreTimes[len(restoreTimes)-1].Round(time.Millisecond), restoreTimes[len(restoreTimes)/2].Round(time.Millisecond))
		}
	})
}

// One flipped byte: the restore is refused (sha256), exit 1, and the
// target is untouched, whatever the format and compression.
func TestRestoreCorruptBackupLeavesTargetUntouched(t *testing.T) {
	dbs := newTenants(t, "rscorrupt", 1)
	seed(t, dbs[0].URL, 3)
	eachDest(t, func(t *testing.T, d dest) {
		for _, c := range []struct{ format, compression string }{{"custom", "zstd"}, {"plain", "none"}, {"custom", "none"}, {"plain", "gzip"}} {
			t.Run(c.format+"-"+c.compression, func(t *testing.T) {
				r, rep := runBackup(t, d, tenantList(dbs), inputs{"format": c.format, "compression": c.compression})
				mustCode(t, r, 0)
				key := rep.Tenants[0].Object
				flipByte(t, d, key, rep.Tenants[0].Bytes*2/3)
				target := freshDB(t, dbName("rsc"))
				r, rrep := runRestore(t, d, inputs{"database-urls": strings.Join(tenantList(dbs), "\n"), "restore-project": dbs[0].Name,
					"restore-backup": path.Base(key), "restore-target-url": target.URL})
				mustCode(t, r, 1)
				rec := rrep.Tenants[0]
				if !strings.Contains(rec.Error, "does not match its manifest") || !strings.Contains(rec.Error, "the target is as it was") {
					t.Errorf("error %q", rec.Error)
				}
				if n := userTables(t, target.URL); n != 0 {
					t.Errorf("the target holds %d tables after a refused restore", n)
				}
				// Nothing in the target at all, not even a schema.
				if tableExists(t, target.URL, `"Odd Schema"."Mixed Case.Table"`) || tableExists(t, target.URL, "public.customers") {
					t.Error("the target was touched")
				}
			})
		}
	})
}

// userTables counts the tables a dump would hold rows of.
func userTables(t *testing.T, url string) (n int) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		ts, err := pgtools.ListTables(ctx, conn)
		n = len(ts)
		return err
	})
	return n
}

// flipByte flips one byte of the object at key.
func flipByte(t *testing.T, d dest, key string, at int64) {
	t.Helper()
	ctx := context.Background()
	rc, err := d.store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x01
	if d.srv == nil {
		if _, err := d.store.(*dir.Store).Put(ctx, key, strings.NewReader(string(b))); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := d.srv.Client().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(d.srv.Bucket), Key: aws.String(d.prefix + "/" + key),
		Body: strings.NewReader(string(b))}); err != nil {
		t.Fatal(err)
	}
}

// An encrypted backup: the object is not readable without the key; the
// identity (the whole age-keygen file) restores it; without an identity
// the run is refused before anything (exit 2); with the wrong one it fails
// (exit 1) and the target is untouched. The identity is never printed.
func TestRestoreEncrypted(t *testing.T) {
	dbs := newTenants(t, "rsenc", 1)
	seed(t, dbs[0].URL, 5)
	source := digests(t, dbs[0].URL)
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	keyFile := "# created: 2026-11-22T03:00:00Z\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	eachDest(t, func(t *testing.T, d dest) {
		r, rep := runBackup(t, d, tenantList(dbs), inputs{"encryption-recipient": other.Recipient().String() + "\n" + id.Recipient().String()})
		mustCode(t, r, 0)
		key := rep.Tenants[0].Object
		if !strings.HasSuffix(key, ".dump.zst.age") {
			t.Fatalf("object %s", key)
		}
		rc, err := d.store.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 22)
		io.ReadFull(rc, head)
		rc.Close()
		if string(head) != "age-encryption.org/v1\n" {
			t.Errorf("object starts %q, not with an age header", head)
		}
		if m := readManifest(t, d, rep.Tenants[0].Manifest); !m.Encrypted() || len(m.Encryption.Recipients) != 2 {
			t.Errorf("manifest encryption %+v", m.Encryption)
		}
		base := inputs{"database-urls": strings.Join(tenantList(dbs), "\n"), "restore-project": dbs[0].Name}

		target := freshDB(t, dbName("rse"))
		r, _ = runRestore(t, d, with(base, inputs{"restore-target-url": target.URL}))
		mustCode(t, r, 2)
		if !strings.Contains(r.stderr, "input encryption-identity") || !strings.Contains(r.stderr, "encrypted") {
			t.Errorf("stderr: %s", r.stderr)
		}
		wrong, _ := age.GenerateX25519Identity()
		r, rrep := runRestore(t, d, with(base, inputs{"restore-target-url": target.URL, "encryption-identity": wrong.String()}))
		mustCode(t, r, 1)
		if !strings.Contains(rrep.Tenants[0].Error, "not one of the backup's recipients") {
			t.Errorf("wrong identity: %q", rrep.Tenants[0].Error)
		}
		if n := userTables(t, target.URL); n != 0 {
			t.Errorf("the target holds %d tables after a refused restore", n)
		}
		assertNoLeak(t, r, wrong.String())

		r, rrep = runRestore(t, d, with(base, inputs{"restore-target-url": target.URL, "encryption-identity": keyFile}))
		mustCode(t, r, 0)
		if got := digests(t, target.URL); !maps.Equal(got, source) {
			t.Errorf("restored %v, want %v", got, source)
		}
		assertNoLeak(t, r, append(d.secrets, id.String(), target.Password, dbs[0].Password)...)
	})
}

// A target that already has tables is refused (exit 2, untouched) unless
// restore-clean, which drops and recreates the backup's objects and leaves
// the target's others alone. A backup is chosen by time and by file name;
// an unknown project and a time before every backup are refused.
func TestRestoreTargetsAndChoices(t *testing.T) {
	dbs := newTenants(t, "rstgt", 1)
	seed(t, dbs[0].URL, 1)
	d := fileDest(t)
	list := strings.Join(tenantList(dbs), "\n")
	r1, rep1 := runBackup(t, d, tenantList(dbs), nil)
	mustCode(t, r1, 0)
	first := rep1.Tenants[0].Object
	time.Sleep(1100 * time.Millisecond)
	execSQL(t, dbs[0].URL, "INSERT INTO customers (name) SELECT 'later ' || g FROM generate_series(1, 25) g")
	r2, rep2 := runBackup(t, d, tenantList(dbs), nil)
	mustCode(t, r2, 0)
	second := rep2.Tenants[0].Object
	if rep2.Tenants[0].Rows != rep1.Tenants[0].Rows+25 {
		t.Fatalf("rows %d then %d", rep1.Tenants[0].Rows, rep2.Tenants[0].Rows)
	}
	base := inputs{"database-urls": list, "restore-project": dbs[0].Name}

	// Non-empty target: refused, then (holding the latest backup's
	// tables and one of its own) restored over with restore-clean.
	target := freshDB(t, dbName("rst"))
	execSQL(t, target.URL, "CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1), (2)")
	r, _ := runRestore(t, d, with(base, inputs{"restore-target-url": target.URL}))
	mustCode(t, r, 2)
	if !strings.Contains(r.stderr, "not empty") || !strings.Contains(r.stderr, "keep_me") || !strings.Contains(r.stderr, "restore-clean") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if tableExists(t, target.URL, "orders") {
		t.Error("the refused target was touched")
	}
	r, _ = runRestore(t, d, with(base, inputs{"restore-target-url": target.URL, "restore-clean": "true"}))
	mustCode(t, r, 0)
	// restore-clean, by the first backup's stamp as a time.
	stamp := strings.TrimSuffix(path.Base(first), ".dump.zst")
	at, _ := archive.ParseStamp(stamp)
	r, rep := runRestore(t, d, with(base, inputs{"restore-target-url": target.URL, "restore-clean": "true", "restore-backup": at.Add(500 * time.Millisecond).Format(time.RFC3339Nano)}))
	mustCode(t, r, 0)
	if rep.Tenants[0].Object != first || rep.Tenants[0].RestoredRows != rep1.Tenants[0].Rows {
		t.Errorf("restored %s with %d rows, want %s with %d", rep.Tenants[0].Object, rep.Tenants[0].RestoredRows, first, rep1.Tenants[0].Rows)
	}
	var kept int
	withConn(t, target.URL, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT count(*) FROM keep_me").Scan(&kept)
	})
	if kept != 2 {
		t.Errorf("restore-clean touched a table that is not the backup's: keep_me has %d rows", kept)
	}
	// latest, by file name and by full key.
	for _, spec := range []string{"latest", path.Base(second), second} {
		target := freshDB(t, dbName("rst"))
		r, rep := runRestore(t, d, with(base, inputs{"restore-target-url": target.URL, "restore-backup": spec}))
		mustCode(t, r, 0)
		if rep.Tenants[0].Object != second {
			t.Errorf("restore-backup %q restored %s, want %s", spec, rep.Tenants[0].Object, second)
		}
	}
	// A tenant no longer in the fleet (a deleted project) is restored by its
	// id, from its folder.
	target = freshDB(t, dbName("rst"))
	r, rep = runRestore(t, d, inputs{"database-urls": "someone-else=" + target.URL, "restore-project": dbs[0].Name, "restore-target-url": target.URL})
	mustCode(t, r, 0)
	if rep.Tenants[0].Object != second {
		t.Errorf("gone tenant: restored %s, want %s", rep.Tenants[0].Object, second)
	}
	for in, want := range map[string]string{
		"restore-project=nobody":                 "input restore-project",
		"restore-backup=2001-01-01T00:00:00Z":    "input restore-backup",
		"restore-backup=20991231T000000Z.dump":   "input restore-backup",
		"restore-target-url=postgres://u:p@ss@h": "input restore-target-url",
	} {
		k, v, _ := strings.Cut(in, "=")
		target := freshDB(t, dbName("rst"))
		r, _ := runRestore(t, d, with(base, inputs{"restore-target-url": target.URL, k: v}))
		mustCode(t, r, 2)
		if !strings.Contains(r.stderr, want) {
			t.Errorf("%s: stderr %s", in, r.stderr)
		}
	}
}
