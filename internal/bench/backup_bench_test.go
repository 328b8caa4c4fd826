package bench

// Backup benchmarks (make bench), each against what people run today,
// measured in the same run on the same machine:
//
//   - BenchmarkBackupFleet: 100 small tenants backed up by pgfleet with
//     concurrency 8, against the same tenants done one after another the
//     way Neon's documented GitHub Action does it (pg_dump | gzip > file,
//     then upload the file), to the same MinIO.
//   - BenchmarkBackupParallelMemory: 8 medium tenants at once, for peak RSS.
//   - BenchmarkBackupLarge: one tenant of about 2 GB (PGFLEET_BENCH_LARGE_MB,
//     default 2048), against pg_dump -Fc -Z0 > /dev/null alone.
//
// Peak RSS is pgfleet's own (VmHWM, sampled until it exits), not pg_dump's.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/testenv/minio"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

const (
	fleetTenants     = 100
	fleetConcurrency = 8
	mediumTenants    = 8
)

// backupEnv is what every backup benchmark needs: the binary, a cluster,
// MinIO and the real pg_dump.
type backupEnv struct {
	bin     string
	cluster *pgcluster.Cluster
	srv     *minio.Server
	pgDump  string
	// endpoint, when set, is where both pgfleet and the script reach S3
	// (a latency proxy in front of srv).
	endpoint string
}

func (e *backupEnv) s3Endpoint() string {
	if e.endpoint != "" {
		return e.endpoint
	}
	return e.srv.Endpoint
}

func newBackupEnv(b *testing.B) *backupEnv {
	b.Helper()
	root := repoRoot(b)
	e := &backupEnv{bin: filepath.Join(b.TempDir(), "pgfleet")}
	build := exec.Command("go", "build", "-o", e.bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	e.cluster = pgcluster.StartForTest(b)
	e.srv = minio.StartForTest(b)
	binDir, err := pgcluster.FindBinDir()
	if err != nil {
		b.Fatal(err)
	}
	e.pgDump = filepath.Join(binDir, "pg_dump")
	if _, err := os.Stat(e.pgDump); err != nil {
		e.pgDump = "pg_dump"
	}
	return e
}

// backupReport is the part of pgfleet's JSON report the benchmarks read.
type backupReport struct {
	Counts  map[string]int `json:"counts"`
	Tenants []struct {
		Status    string  `json:"status"`
		Error     string  `json:"error"`
		Bytes     int64   `json:"bytes"`
		DumpBytes int64   `json:"dump_bytes"`
		Seconds   float64 `json:"dump_seconds"`
	} `json:"tenants"`
}

// backupRun is what one pgfleet backup run measured.
type backupRun struct {
	took    time.Duration
	peakKiB int64         // pgfleet's peak RSS
	toolCPU time.Duration // pgfleet's and its pg_dumps' CPU time
	cpu     cpuUse
	report  backupReport
}

// pgfleetBackup backs the tenants up to prefix in MinIO.
func (e *backupEnv) pgfleetBackup(b *testing.B, dbs []pgcluster.TenantDB, prefix string, concurrency int) backupRun {
	b.Helper()
	var list strings.Builder
	for _, db := range dbs {
		fmt.Fprintf(&list, "%s=%s\n", db.Name, db.URL)
	}
	reportPath := filepath.Join(b.TempDir(), "report.json")
	cmd := exec.Command(e.bin, "backup",
		"--destination", "s3://"+e.srv.Bucket+"/"+prefix,
		"--s3-endpoint", e.s3Endpoint(), "--s3-force-path-style", "--aws-region", minio.Region,
		"--pg-dump-path", e.pgDump, "--concurrency", strconv.Itoa(concurrency), "--tenant-timeout", "2h",
		"--report-file", reportPath)
	cmd.Env = append(os.Environ(), "INPUT_DATABASE-URLS="+list.String(),
		"AWS_ACCESS_KEY_ID="+e.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+e.srv.SecretKey)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	cpu0, start := e.cpuNow(b), time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	peak := make(chan int64)
	go func() { peak <- samplePeakRSS(cmd.Process.Pid) }()
	err := cmd.Wait()
	r := backupRun{took: time.Since(start), cpu: e.cpuNow(b).sub(cpu0)}
	r.peakKiB = <-peak
	if err != nil {
		b.Fatalf("pgfleet backup: %v\n%s", err, out)
	}
	// wait4's usage counts the children pgfleet waited for: its pg_dumps.
	r.toolCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	raw, err := os.ReadFile(reportPath)
	if err == nil {
		err = json.Unmarshal(raw, &r.report)
	}
	if err != nil || r.report.Counts["succeeded"] != len(dbs) {
		b.Fatalf("report: %v %v\n%s", err, r.report.Counts, out)
	}
	return r
}

// cpuUse is CPU time spent, split by who spent it.
type cpuUse struct {
	machine time.Duration // every process on the machine
	server  time.Duration // PostgreSQL: the postmaster and the backends it reaped
	store   time.Duration // MinIO
}

func (a cpuUse) sub(b cpuUse) cpuUse {
	return cpuUse{a.machine - b.machine, a.server - b.server, a.store - b.store}
}

// cpuNow reads the CPU time used so far by the machine, the database
// server and MinIO.
func (e *backupEnv) cpuNow(b *testing.B) cpuUse {
	pid, err := e.cluster.ServerPID()
	if err != nil {
		b.Fatal(err)
	}
	return cpuUse{machine: machineCPU(), server: processCPU(pid), store: processCPU(e.srv.PID())}
}

// clockTick is USER_HZ, the unit of /proc's CPU times.
const clockTick = time.Second / 100

// machineCPU is the busy time of every core since boot, from /proc/stat.
func machineCPU() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	var busy int64
	// user nice system idle iowait irq softirq steal (guest time is
	// already in user)
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		if i <= 7 && i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * clockTick
}

// processCPU is a process's CPU time and that of the children it has
// waited for, from /proc/<pid>/stat.
func processCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// After the command name: state is field 3, utime 14 ... cstime 17.
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	var t int64
	for _, k := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseInt(f[k], 10, 64)
		t += n
	}
	return time.Duration(t) * clockTick
}

// samplePeakRSS reads the process's VmHWM (peak resident set) until it is
// gone, and returns the last value read, in KiB.
func samplePeakRSS(pid int) int64 {
	var last int64
	path := fmt.Sprintf("/proc/%d/status", pid)
	for {
		f, err := os.Open(path)
		if err != nil {
			return last
		}
		sc := bufio.NewScanner(f)
		found := false
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				last = max(last, n)
				found = true
			}
		}
		f.Close()
		if !found { // a zombie has no memory lines: it has exited
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// neonStyle backs the tenants up one after another the way Neon's
// documented GitHub Action does: pg_dump "$URL" | gzip > file, then upload
// the file. It returns the wall time, the CPU time and the bytes stored.
func (e *backupEnv) neonStyle(b *testing.B, dbs []pgcluster.TenantDB, prefix string) (time.Duration, cpuUse, int64) {
	b.Helper()
	ctx := context.Background()
	client := awss3.New(awss3.Options{
		Region: minio.Region, BaseEndpoint: aws.String(e.s3Endpoint()), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(e.srv.AccessKey, e.srv.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	})
	dir := b.TempDir()
	var stored int64
	cpu0, start := e.cpuNow(b), time.Now()
	for _, db := range dbs {
		file := filepath.Join(dir, db.Name+".sql.gz")
		cmd := exec.Command("bash", "-c", `set -o pipefail; "$0" "$1" | gzip > "$2"`, e.pgDump, db.URL, file)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pg_dump | gzip: %v\n%s", err, out)
		}
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		fi, _ := f.Stat()
		_, err = client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(e.srv.Bucket), Key: aws.String(prefix + "/" + db.Name + ".sql.gz"),
			Body: f, ContentLength: aws.Int64(fi.Size())})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		stored += fi.Size()
		os.Remove(file)
	}
	return time.Since(start), e.cpuNow(b).sub(cpu0), stored
}

func createTenants(b *testing.B, c *pgcluster.Cluster, prefix string, n int, seedSQL string) []pgcluster.TenantDB {
	b.Helper()
	dbs, err := c.CreateTenants(context.Background(), prefix, n)
	if err != nil {
		b.Fatal(err)
	}
	forEach(b, dbs, func(conn *pgx.Conn) error {
		_, err := conn.Exec(context.Background(), seedSQL)
		return err
	})
	return dbs
}

// smallSeed is a small SaaS tenant: a few tables, a few thousand rows
// (a dump of about 400 KB).
const smallSeed = `
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text, created timestamptz NOT NULL DEFAULT '2026-01-01');
INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, 500) g;
CREATE TABLE projects (id bigserial PRIMARY KEY, owner bigint REFERENCES users, title text, settings jsonb);
INSERT INTO projects (owner, title, settings) SELECT 1 + g % 500, 'Project ' || g, jsonb_build_object('theme', 'dark', 'n', g) FROM generate_series(1, 1000) g;
CREATE TABLE events (id bigserial PRIMARY KEY, project bigint REFERENCES projects, kind text, payload text, at timestamptz);
INSERT INTO events (project, kind, payload, at) SELECT 1 + g % 1000, (ARRAY['open','edit','close'])[1 + g % 3], md5(g::text) || ' event payload ' || g, '2026-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 4000) g;
CREATE INDEX ON events (project);
`

// bigSeed fills one table to about mb megabytes of dump: rows of mixed
// text, numbers and timestamps that compress like real data.
func bigSeed(mb int) string {
	rows := mb * 1024 * 1024 / 190
	return fmt.Sprintf(`
CREATE TABLE orders (id bigint, customer text, email text, status text, total numeric(12,2), note text, created timestamptz);
INSERT INTO orders SELECT g, 'Customer ' || (g %% 50000), 'c' || (g %% 50000) || '@example.com',
  (ARRAY['new','paid','shipped','returned'])[1 + g %% 4], (g %% 10000) / 7.0,
  md5(g::text) || ' ' || substr(md5((g * 31)::text), 1, 12) || ' delivered to the usual address, leave at the door',
  '2026-01-01'::timestamptz + g * interval '1 second'
FROM generate_series(1, %d) g;`, rows)
}

// rtt is the round trip the second fleet measurement adds between the
// runner and both Postgres and S3: a runner in the database's region.
const rtt = 10 * time.Millisecond

func BenchmarkBackupFleet(b *testing.B) {
	e := newBackupEnv(b)
	dbs := createTenants(b, e.cluster, "bkfleet", fleetTenants, smallSeed)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.fleetRound(b, dbs, fmt.Sprintf("local-%d", i), i, "on this machine (no network latency)")
		// The same through proxies that add the latency of a real network:
		// what a sequential script pays for every round trip.
		pgProxy := delayProxy(b, fmt.Sprintf("127.0.0.1:%d", e.cluster.Port()), rtt/2)
		s3Proxy := delayProxy(b, strings.TrimPrefix(e.srv.Endpoint, "http://"), rtt/2)
		slow := *e
		slow.endpoint = "http://" + s3Proxy
		var far []pgcluster.TenantDB
		for _, db := range dbs {
			db.URL = strings.Replace(db.URL, fmt.Sprintf("127.0.0.1:%d", e.cluster.Port()), pgProxy, 1)
			far = append(far, db)
		}
		slow.fleetRound(b, far, fmt.Sprintf("rtt-%d", i), i, fmt.Sprintf("with %s round trips to Postgres and S3", rtt))
	}
}

// fleetRound measures pgfleet and the one-by-one script once each.
func (e *backupEnv) fleetRound(b *testing.B, dbs []pgcluster.TenantDB, prefix string, i int, where string) {
	// Alternate who goes first, so neither always meets a warmer cache.
	var fleet backupRun
	var neonTook time.Duration
	var neonCPU cpuUse
	var neonStored int64
	runFleet := func() { fleet = e.pgfleetBackup(b, dbs, "pgfleet-"+prefix, fleetConcurrency) }
	runNeon := func() { neonTook, neonCPU, neonStored = e.neonStyle(b, dbs, "neon-style-"+prefix) }
	if i%2 == 0 {
		runFleet()
		runNeon()
	} else {
		runNeon()
		runFleet()
	}
	var stored, dumped int64
	for _, t := range fleet.report.Tenants {
		stored += t.Bytes
		dumped += t.DumpBytes
	}
	metric := "local-"
	if e.endpoint != "" {
		metric = "rtt-"
	}
	speedup := neonTook.Seconds() / fleet.took.Seconds()
	b.ReportMetric(speedup, metric+"x-faster")
	b.ReportMetric(float64(fleet.peakKiB)/1024, metric+"peak-MiB")
	b.ReportMetric(float64(dumped)/float64(stored), "compression-ratio")
	perTenant := func(d time.Duration) string { return (d / fleetTenants).Round(time.Millisecond).String() }
	fmt.Printf("\n%d small tenants to MinIO, %s (GOMAXPROCS %d):\n", fleetTenants, where, runtime.GOMAXPROCS(0))
	fmt.Printf("  pgfleet, concurrency %d:             %6.2fs  (%.1f tenants/s), peak RSS %.1f MiB, %s stored, compression ratio %.2f (zstd, custom format)\n",
		fleetConcurrency, fleet.took.Seconds(), float64(fleetTenants)/fleet.took.Seconds(), float64(fleet.peakKiB)/1024, mib(stored), float64(dumped)/float64(stored))
	fmt.Printf("  one by one, pg_dump | gzip > file + upload: %6.2fs  (%.1f tenants/s), %s stored\n",
		neonTook.Seconds(), float64(fleetTenants)/neonTook.Seconds(), mib(neonStored))
	// What bounds the ratio when nothing waits on a network: the CPU each
	// tenant costs the whole machine (pg_dump, the server, MinIO, the
	// tool), and the cores there are to spend it on.
	fmt.Printf("  CPU per tenant, whole machine: pgfleet %s (pgfleet and pg_dump %s, the server %s, MinIO %s), the script %s (the server %s, MinIO %s; %.0f%% of one core busy)\n",
		perTenant(fleet.cpu.machine), perTenant(fleet.toolCPU), perTenant(fleet.cpu.server), perTenant(fleet.cpu.store),
		perTenant(neonCPU.machine), perTenant(neonCPU.server), perTenant(neonCPU.store), 100*neonCPU.machine.Seconds()/neonTook.Seconds())
	fmt.Printf("  pgfleet is %.1fx faster (target >= 5x)\n", speedup)
}

func BenchmarkBackupParallelMemory(b *testing.B) {
	mb := envInt("PGFLEET_BENCH_MEDIUM_MB", 128)
	e := newBackupEnv(b)
	dbs := createTenants(b, e.cluster, "bkmedium", mediumTenants, bigSeed(mb))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := e.pgfleetBackup(b, dbs, fmt.Sprintf("medium-%d", i), mediumTenants)
		took, kib, rep := r.took, r.peakKiB, r.report
		var stored, dumped int64
		for _, t := range rep.Tenants {
			stored += t.Bytes
			dumped += t.DumpBytes
		}
		b.ReportMetric(float64(kib)/1024, "peak-MiB")
		fmt.Printf("\n%d tenants of %s at once (GOMAXPROCS %d): %.2fs, %s dumped, %s stored (ratio %.2f), pgfleet peak RSS %.1f MiB (target < 600 MiB)\n",
			mediumTenants, mib(dumped/int64(len(rep.Tenants))), runtime.GOMAXPROCS(0), took.Seconds(), mib(dumped), mib(stored), float64(dumped)/float64(stored), float64(kib)/1024)
	}
}

func BenchmarkBackupLarge(b *testing.B) {
	mb := envInt("PGFLEET_BENCH_LARGE_MB", 2048)
	e := newBackupEnv(b)
	seedStart := time.Now()
	dbs := createTenants(b, e.cluster, "bklarge", 1, bigSeed(mb))
	fmt.Printf("\nseeded a tenant of about %d MB in %s\n", mb, time.Since(seedStart).Round(time.Second))
	db := dbs[0]
	var aloneCPU cpuUse
	var aloneToolCPU time.Duration
	pgDumpAlone := func() time.Duration {
		// pg_dump -Fc -Z0 "$URL" > /dev/null: exec's nil Stdout is /dev/null.
		cmd := exec.Command(e.pgDump, "-Fc", "-Z0", db.URL)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		cpu0, start := e.cpuNow(b), time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("pg_dump: %v\n%s", err, stderr.String())
		}
		took := time.Since(start)
		aloneCPU, aloneToolCPU = e.cpuNow(b).sub(cpu0), cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()
		return took
	}
	pgDumpAlone() // warm the cache once, for both
	// Each figure is the median of this many rounds: these cores are
	// shared, and one round can take twice as long as the next.
	const rounds = 5
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var alone, took []time.Duration
		var peak int64
		var rep backupReport
		var last backupRun
		for r := 0; r < rounds; r++ {
			// Alternate who goes first.
			runFleet := func() {
				run := e.pgfleetBackup(b, dbs, fmt.Sprintf("large-%d-%d", i, r), 1)
				took, peak, rep, last = append(took, run.took), max(peak, run.peakKiB), run.report, run
			}
			if r%2 == 0 {
				alone = append(alone, pgDumpAlone())
				runFleet()
			} else {
				runFleet()
				alone = append(alone, pgDumpAlone())
			}
		}
		t := rep.Tenants[0]
		a, p := median(alone), median(took)
		speed := a.Seconds() / p.Seconds()
		b.ReportMetric(speed, "x-pg_dump-speed")
		b.ReportMetric(float64(peak)/1024, "peak-MiB")
		b.ReportMetric(float64(t.DumpBytes)/float64(t.Bytes), "compression-ratio")
		fmt.Printf("\none tenant, %s of dump, median of %d rounds (GOMAXPROCS %d; the server, MinIO and pgfleet share these cores):\n", mib(t.DumpBytes), rounds, runtime.GOMAXPROCS(0))
		fmt.Printf("  pg_dump -Fc -Z0 > /dev/null alone:     %6.2fs  (%s/s)  rounds: %v\n", a.Seconds(), mib(int64(float64(t.DumpBytes)/a.Seconds())), rounded(alone))
		fmt.Printf("  pgfleet backup to MinIO (zstd level 1, row counts, manifest): %6.2fs  (%s/s)  rounds: %v\n", p.Seconds(), mib(int64(float64(t.DumpBytes)/p.Seconds())), rounded(took))
		fmt.Printf("  %s stored, compression ratio %.2f, pgfleet peak RSS %.1f MiB (target < 300 MiB)\n", mib(t.Bytes), float64(t.DumpBytes)/float64(t.Bytes), float64(peak)/1024)
		// Where the cores went, in the last round of each. (The server's own
		// share is left out here: the postmaster's count also takes in the
		// autovacuum workers that the 2 GB load set off.)
		secs := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
		fmt.Printf("  CPU, whole machine: pg_dump alone %s (pg_dump itself %s); pgfleet %s (pgfleet and pg_dump %s, MinIO %s)\n",
			secs(aloneCPU.machine), secs(aloneToolCPU), secs(last.cpu.machine), secs(last.toolCPU), secs(last.cpu.store))
		fmt.Printf("  pgfleet runs at %.2fx pg_dump's speed (target >= 0.8x)\n", speed)
	}
}

func rounded(ds []time.Duration) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Round(10*time.Millisecond).String())
	}
	return out
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// delayProxy forwards TCP connections to target, delaying every chunk by
// oneWay in each direction (without capping throughput), and returns its
// address.
func delayProxy(b *testing.B, target string, oneWay time.Duration) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				done := make(chan struct{}, 2)
				go func() { delayedCopy(up, c, oneWay); done <- struct{}{} }()
				go func() { delayedCopy(c, up, oneWay); done <- struct{}{} }()
				<-done
				<-done
				c.Close()
				up.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// delayedCopy copies src to dst, each chunk delay after it was read, then
// closes dst's write side.
func delayedCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 4096)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{buf[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	for range ch {
	}
}
