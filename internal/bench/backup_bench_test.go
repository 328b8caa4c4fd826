package bench

// Backup benchmarks (make bench), each against what people run today,
// measured in the same run on the same machine:
//
//   - BenchmarkBackupFleet: 100 small tenants backed up by pgfleet with
//     concurrency 8, against the same tenants done one after another the
//     way Neon's documented GitHub Action does it (pg_dump | gzip > file,
//     then upload the file), to the same MinIO, through three networks:
//     this machine's own, 10 ms round trips to Postgres and S3, and those
//     plus 500 ms on each database's first connection (a suspended Neon
//     compute waking). Locally it also sets the CPU time pgfleet itself
//     spends per tenant against the script's own (gzip and the upload),
//     each without pg_dump's.
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	_, bin := buildFromRoot(b)
	e := &backupEnv{bin: bin}
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
	ownCPU  time.Duration // pgfleet's own (user+sys), without its pg_dumps'
	dumpCPU time.Duration // its pg_dumps' (the children it waited for)
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
	// Wait only once the watch has seen the zombie: its CPU split (own,
	// children) is readable until it is reaped.
	w := watchProcess(cmd.Process.Pid)
	err := cmd.Wait()
	r := backupRun{took: time.Since(start), cpu: e.cpuNow(b).sub(cpu0), peakKiB: w.peakKiB, ownCPU: w.own, dumpCPU: w.children}
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
	t := procStat(pid)
	return t[0] + t[1] + t[2] + t[3]
}

// procStat is a process's utime, stime, cutime and cstime from
// /proc/<pid>/stat (zero if it is gone).
func procStat(pid int) [4]time.Duration {
	var t [4]time.Duration
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return t
	}
	// After the command name: state is field 3, utime 14 ... cstime 17.
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	for k := range t {
		n, _ := strconv.ParseInt(f[11+k], 10, 64)
		t[k] = time.Duration(n) * clockTick
	}
	return t
}

// watched is what watchProcess saw of a process.
type watched struct {
	peakKiB       int64         // peak resident set (VmHWM)
	own, children time.Duration // CPU time (user+sys) of the process itself, and of the children it waited for
}

// watchProcess reads the process's VmHWM (peak resident set) until it has
// exited, then, from its zombie, its own CPU time and its children's
// (wait4's rusage lumps the two together). The caller must not reap the
// process (cmd.Wait) before this returns.
func watchProcess(pid int) watched {
	var w watched
	path := fmt.Sprintf("/proc/%d/status", pid)
	for {
		f, err := os.Open(path)
		if err != nil {
			return w
		}
		sc := bufio.NewScanner(f)
		found := false
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				w.peakKiB = max(w.peakKiB, n)
				found = true
			}
		}
		f.Close()
		if !found { // a zombie has no memory lines: it has exited
			t := procStat(pid)
			w.own, w.children = t[0]+t[1], t[2]+t[3]
			return w
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scriptRun is what one run of the one-by-one script measured.
type scriptRun struct {
	took   time.Duration
	cpu    cpuUse
	stored int64
	// The script's own CPU time (user+sys), for the same comparison as
	// pgfleet's own: gzip's processes and the uploader (this process's
	// S3 client during the uploads). pg_dump's is apart, as pgfleet's is.
	gzipCPU, uploadCPU, dumpCPU time.Duration
}

// neonStyle backs the tenants up one after another the way Neon's
// documented GitHub Action does: pg_dump "$URL" | gzip > file, then upload
// the file. The pipe is set up here rather than by a shell, so that gzip's
// CPU time can be read apart from pg_dump's (the shell's own, a
// millisecond or two, is left out: in the script's favour). The upload is
// this process's S3 client, cheaper than any CLI started per file.
func (e *backupEnv) neonStyle(b *testing.B, dbs []pgcluster.TenantDB, prefix string) scriptRun {
	b.Helper()
	ctx := context.Background()
	client := e.srv.ClientAt(e.s3Endpoint())
	dir := b.TempDir()
	var r scriptRun
	cpu0, start := e.cpuNow(b), time.Now()
	for _, db := range dbs {
		file := filepath.Join(dir, db.Name+".sql.gz")
		dumpCPU, gzipCPU := e.dumpGzip(b, db.URL, file)
		r.dumpCPU += dumpCPU
		r.gzipCPU += gzipCPU
		self0 := selfCPU()
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
		r.stored += fi.Size()
		os.Remove(file)
		r.uploadCPU += selfCPU() - self0
	}
	r.took, r.cpu = time.Since(start), e.cpuNow(b).sub(cpu0)
	return r
}

// dumpGzip runs pg_dump "$URL" | gzip > file (failing if either fails,
// as with pipefail) and returns each one's CPU time.
func (e *backupEnv) dumpGzip(b *testing.B, url, file string) (dumpCPU, gzipCPU time.Duration) {
	b.Helper()
	out, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	var dumpErr, gzipErr strings.Builder
	dump := exec.Command(e.pgDump, url)
	dump.Stdout, dump.Stderr = pw, &dumpErr
	gz := exec.Command("gzip")
	gz.Stdin, gz.Stdout, gz.Stderr = pr, out, &gzipErr
	if err := dump.Start(); err != nil {
		b.Fatal(err)
	}
	if err := gz.Start(); err != nil {
		b.Fatal(err)
	}
	pw.Close()
	pr.Close()
	errD, errG := dump.Wait(), gz.Wait()
	if errD != nil || errG != nil {
		b.Fatalf("pg_dump | gzip: %v %v\n%s%s", errD, errG, dumpErr.String(), gzipErr.String())
	}
	cpu := func(c *exec.Cmd) time.Duration { return c.ProcessState.UserTime() + c.ProcessState.SystemTime() }
	return cpu(dump), cpu(gz)
}

// selfCPU is this process's CPU time so far (user+sys).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// The networks the fleet is measured through besides this machine's own:
// rtt is the round trip added between the runner and both Postgres and S3
// (a runner in the database's region), wake what a suspended Neon compute
// adds to the first connection to its database.
const (
	rtt  = 10 * time.Millisecond
	wake = 500 * time.Millisecond
)

// fleetScenario is one network the fleet is backed up through.
type fleetScenario struct {
	metric, title, where string
	env                  *backupEnv
	// dbs is the tenants as this network reaches them, asked again for
	// each run: a sleeping compute must be asleep for pgfleet and the
	// script alike.
	dbs func() []pgcluster.TenantDB
}

// fleetResult is one scenario's pgfleet run and script run.
type fleetResult struct {
	fleetScenario
	fleet  backupRun
	script scriptRun
}

func (r fleetResult) speedup() float64 { return r.script.took.Seconds() / r.fleet.took.Seconds() }

func BenchmarkBackupFleet(b *testing.B) {
	e := newBackupEnv(b)
	dbs := createTenants(b, e.cluster, "bkfleet", fleetTenants, smallSeed)
	pgAddr := fmt.Sprintf("127.0.0.1:%d", e.cluster.Port())
	// Through proxies that add the latency of a real network: what a
	// sequential script pays for every round trip.
	far := *e
	far.endpoint = "http://" + delayProxy(b, strings.TrimPrefix(e.srv.Endpoint, "http://"), rtt/2, 0)
	pgProxy := delayProxy(b, pgAddr, rtt/2, 0)
	scenarios := []fleetScenario{
		{metric: "local", title: "local", where: "on this machine (no network latency)", env: e,
			dbs: func() []pgcluster.TenantDB { return dbs }},
		{metric: "rtt", title: fmt.Sprintf("%s round trips", rtt), where: fmt.Sprintf("with %s round trips to Postgres and S3", rtt), env: &far,
			dbs: func() []pgcluster.TenantDB { return reroute(dbs, pgAddr, func() string { return pgProxy }) }},
		// Each database behind a proxy of its own that holds the first
		// connection for the wake, and any that come while it wakes: a
		// compute per tenant, suspended before each run.
		{metric: "wake", title: fmt.Sprintf("%s round trips + %s wake", rtt, wake),
			where: fmt.Sprintf("with %s round trips and %s more on each database's first connection (a suspended Neon compute waking)", rtt, wake), env: &far,
			dbs: func() []pgcluster.TenantDB {
				return reroute(dbs, pgAddr, func() string { return delayProxy(b, pgAddr, rtt/2, wake) })
			}},
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var results []fleetResult
		for _, sc := range scenarios {
			results = append(results, fleetRound(b, sc, i))
		}
		reportFleet(b, results)
	}
}

// reroute is the tenants with addr in their URLs replaced by what to
// gives for each.
func reroute(dbs []pgcluster.TenantDB, addr string, to func() string) []pgcluster.TenantDB {
	out := make([]pgcluster.TenantDB, len(dbs))
	for k, db := range dbs {
		db.URL = strings.Replace(db.URL, addr, to(), 1)
		out[k] = db
	}
	return out
}

// fleetRound measures pgfleet and the one-by-one script once each.
func fleetRound(b *testing.B, sc fleetScenario, i int) fleetResult {
	e := sc.env
	r := fleetResult{fleetScenario: sc}
	prefix := fmt.Sprintf("%s-%d", sc.metric, i)
	// Alternate who goes first, so neither always meets a warmer cache.
	runFleet := func() { r.fleet = e.pgfleetBackup(b, sc.dbs(), "pgfleet-"+prefix, fleetConcurrency) }
	runScript := func() { r.script = e.neonStyle(b, sc.dbs(), "neon-style-"+prefix) }
	if i%2 == 0 {
		runFleet()
		runScript()
	} else {
		runScript()
		runFleet()
	}
	fleet, script := r.fleet, r.script
	var stored, dumped int64
	for _, t := range fleet.report.Tenants {
		stored += t.Bytes
		dumped += t.DumpBytes
	}
	fmt.Printf("\n%d small tenants to MinIO, %s (GOMAXPROCS %d):\n", fleetTenants, sc.where, runtime.GOMAXPROCS(0))
	fmt.Printf("  pgfleet, concurrency %d:             %6.2fs  (%.1f tenants/s), peak RSS %.1f MiB, %s stored, compression ratio %.2f (zstd, custom format)\n",
		fleetConcurrency, fleet.took.Seconds(), float64(fleetTenants)/fleet.took.Seconds(), float64(fleet.peakKiB)/1024, mib(stored), float64(dumped)/float64(stored))
	fmt.Printf("  one by one, pg_dump | gzip > file + upload: %6.2fs  (%.1f tenants/s), %s stored\n",
		script.took.Seconds(), float64(fleetTenants)/script.took.Seconds(), mib(script.stored))
	// What bounds the ratio when nothing waits on a network: the CPU each
	// tenant costs the whole machine (pg_dump, the server, MinIO, the
	// tool), and the cores there are to spend it on.
	fmt.Printf("  CPU per tenant, whole machine: pgfleet %s (pgfleet %s, its pg_dumps %s, the server %s, MinIO %s), the script %s (gzip and upload %s, pg_dump %s, the server %s, MinIO %s; %.0f%% of one core busy)\n",
		perTenant(fleet.cpu.machine), perTenant(fleet.ownCPU), perTenant(fleet.dumpCPU), perTenant(fleet.cpu.server), perTenant(fleet.cpu.store),
		perTenant(script.cpu.machine), perTenant(script.gzipCPU+script.uploadCPU), perTenant(script.dumpCPU), perTenant(script.cpu.server), perTenant(script.cpu.store),
		100*script.cpu.machine.Seconds()/script.took.Seconds())
	fmt.Printf("  pgfleet is %.1fx faster\n", r.speedup())
	return r
}

// perTenant is a fleet run's total spread over its tenants.
func perTenant(d time.Duration) string {
	return (d / fleetTenants).Round(100 * time.Microsecond).String()
}

// reportFleet sets the scenarios side by side, all measured in this run,
// and the CPU time pgfleet itself spends per tenant (locally) against the
// script's: gzip's processes and the uploader, each without pg_dump's.
func reportFleet(b *testing.B, results []fleetResult) {
	fmt.Printf("\n%d small tenants, pgfleet (concurrency %d) against pg_dump | gzip > file + upload one by one, measured in this run:\n", fleetTenants, fleetConcurrency)
	fmt.Printf("  %-32s %9s %9s   %s\n", "network", "pgfleet", "script", "pgfleet is")
	var peak int64
	for _, r := range results {
		fmt.Printf("  %-32s %8.2fs %8.2fs   %.1fx faster\n", r.title, r.fleet.took.Seconds(), r.script.took.Seconds(), r.speedup())
		b.ReportMetric(r.speedup(), r.metric+"-x-faster")
		peak = max(peak, r.fleet.peakKiB)
	}
	local := results[0]
	own, script := local.fleet.ownCPU, local.script.gzipCPU+local.script.uploadCPU
	ratio := own.Seconds() / script.Seconds()
	fmt.Printf("  CPU per tenant, locally: pgfleet's own %s against the script's %s (gzip %s, upload %s): %.2fx (target <= 1.2x); pg_dump's apart: %s under pgfleet (custom format, uncompressed), %s in the script (plain)\n",
		perTenant(own), perTenant(script), perTenant(local.script.gzipCPU), perTenant(local.script.uploadCPU), ratio,
		perTenant(local.fleet.dumpCPU), perTenant(local.script.dumpCPU))
	b.ReportMetric(ratio, "cpu-x-script")
	b.ReportMetric(float64(peak)/1024, "peak-MiB")
	var stored, dumped int64
	for _, t := range local.fleet.report.Tenants {
		stored += t.Bytes
		dumped += t.DumpBytes
	}
	b.ReportMetric(float64(dumped)/float64(stored), "compression-ratio")
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
// address. With wake > 0, the first connection is held that long before it
// is forwarded, and so is any that comes meanwhile (a suspended compute
// waking); the ones after only pay oneWay.
func delayProxy(b *testing.B, target string, oneWay, wake time.Duration) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	var woke sync.Once
	var awake time.Time
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			woke.Do(func() { awake = time.Now().Add(wake) })
			go func() {
				time.Sleep(time.Until(awake))
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
