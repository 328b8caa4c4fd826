package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/status"
	"github.com/pgfleet/pgfleet/internal/storage/s3"
	"github.com/pgfleet/pgfleet/internal/testenv/minio"
)

// BenchmarkStatus500Tenants: status's versions and drift over 500 tenants
// at concurrency 16, against the floor: a bare pgx loop that connects and
// runs the same read-only transaction (the migrations table and the one
// catalog query). Target: within 1.3x.
func BenchmarkStatus500Tenants(b *testing.B) {
	const n, conc = 500, 16
	ctx := context.Background()
	f := newTenantFleet(b, "stat", n)
	dbs := f.dbs
	forEachN(b, dbs, conc, func(conn *pgx.Conn) error { return plainMigrate(ctx, conn, f.files) })
	pgfleet := func() time.Duration {
		took, _ := f.pgfleet(b, "status", conc)
		return took
	}
	query := status.CatalogQuery()
	floor := func() time.Duration {
		start := time.Now()
		forEachN(b, dbs, conc, func(conn *pgx.Conn) error {
			tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			rows, _ := tx.Query(ctx, "SELECT version::text FROM schema_migrations")
			if _, err := pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
			rows, _ = tx.Query(ctx, query)
			_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
			return err
		})
		return time.Since(start)
	}
	var fl, pf []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < 3; r++ {
			if r%2 == 0 {
				fl = append(fl, floor())
				pf = append(pf, pgfleet())
			} else {
				pf = append(pf, pgfleet())
				fl = append(fl, floor())
			}
		}
	}
	b.StopTimer()
	fm, p := median(fl), median(pf)
	b.ReportMetric(float64(n)/p.Seconds(), "tenants/s")
	b.ReportMetric(p.Seconds()/fm.Seconds(), "x-floor")
	fmt.Printf("\nstatus, %d tenants, concurrency %d: pgfleet %s, floor %s: %.2fx the floor's time (target <= 1.3x)\n", n, conc, p.Round(time.Millisecond), fm.Round(time.Millisecond), p.Seconds()/fm.Seconds())
}

// BenchmarkStatusBackups1000Tenants: status with only a destination over
// 1,000 tenants with 14 good backups each in MinIO. Targets: under 10 s,
// and no more list requests than the keys require (S3 lists 1,000 keys a
// page): the destination is listed once for the run, not per tenant.
func BenchmarkStatusBackups1000Tenants(b *testing.B) {
	const tenants, perTenant = 1000, 14
	ctx := context.Background()
	_, bin := buildFromRoot(b)
	srv := minio.StartForTest(b)
	store, err := s3.New(ctx, s3.Options{Bucket: srv.Bucket, Prefix: "status-bench", Endpoint: srv.Endpoint, ForcePathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	// The backups, written straight to the bucket (pgfleet's names and
	// manifests, small dumps).
	now := time.Now().UTC()
	work := make(chan [2]int)
	var wg sync.WaitGroup
	var putErr atomic.Value
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range work {
				folder := fmt.Sprintf("t%04d", job[0])
				at := now.Add(-time.Duration(job[1]) * 24 * time.Hour)
				key := archive.DumpKey(folder, at, archive.Ext(archive.Custom, archive.Zstd, false))
				body := []byte("dump")
				m := archive.Manifest{Version: archive.ManifestVersion, Format: archive.Custom, Compression: archive.Zstd, Object: key, Bytes: int64(len(body)), SHA256: strings.Repeat("0", 64)}
				mb, _ := m.Marshal()
				if _, err := store.Put(ctx, key, bytes.NewReader(body)); err != nil {
					putErr.Store(err)
				}
				if _, err := store.Put(ctx, archive.ManifestKey(key), bytes.NewReader(mb)); err != nil {
					putErr.Store(err)
				}
			}
		}()
	}
	for t := 0; t < tenants; t++ {
		for k := 0; k < perTenant; k++ {
			work <- [2]int{t, k}
		}
	}
	close(work)
	wg.Wait()
	if err, _ := putErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	keys := tenants * perTenant * 2

	// A proxy in front of MinIO counts the requests pgfleet sends.
	target, _ := url.Parse(srv.Endpoint)
	var lists, gets atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Query().Has("list-type"):
			lists.Add(1)
		case r.Method == http.MethodGet:
			gets.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	defer counting.Close()

	var list strings.Builder
	for t := 0; t < tenants; t++ {
		// Nothing listens at port 9: a connection would fail the tenant.
		fmt.Fprintf(&list, "t%04d=postgres://app:pw@127.0.0.1:9/t%04d\n", t, t)
	}
	report := filepath.Join(b.TempDir(), "r.json")
	b.ResetTimer()
	var took time.Duration
	for i := 0; i < b.N; i++ {
		lists.Store(0)
		gets.Store(0)
		took, _, _ = runPgfleet(b, bin, []string{"INPUT_DATABASE-URLS=" + list.String(), "AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey},
			"status", "--migrations-dir", "none", "--destination", "s3://"+srv.Bucket+"/status-bench",
			"--s3-endpoint", counting.URL, "--s3-force-path-style", "--aws-region", minio.Region,
			"--max-backup-age", "26h", "--concurrency", "16", "--report-file", report)
	}
	b.StopTimer()
	var rep struct {
		Counts map[string]int `json:"counts"`
	}
	raw, _ := os.ReadFile(report)
	json.Unmarshal(raw, &rep)
	if rep.Counts["failed"] != 0 {
		b.Fatalf("counts %v", rep.Counts)
	}
	pages := (keys + 999) / 1000
	if keys%1000 == 0 {
		pages++ // a full last page may say it is truncated: one empty page follows
	}
	b.ReportMetric(took.Seconds(), "s")
	b.ReportMetric(float64(lists.Load()), "list-requests")
	fmt.Printf("\nstatus, backups only, %d tenants x %d backups (%d keys) in MinIO: %s (target < 10s); %d list requests (the keys need %d), %d gets\n",
		tenants, perTenant, keys, took.Round(time.Millisecond), lists.Load(), pages, gets.Load())
	if lists.Load() > int64(pages) {
		b.Errorf("%d list requests for %d keys: more than the %d pages they need", lists.Load(), keys, pages)
	}
}
