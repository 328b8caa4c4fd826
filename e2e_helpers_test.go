package main

// End-to-end tests: the real binary, built once, run the way the Actions
// runner runs it (inputs as INPUT_* variables, GITHUB_STEP_SUMMARY and
// GITHUB_OUTPUT files), against a real PostgreSQL cluster and the Neon API
// emulator.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/pgfleet/pgfleet/internal/testenv"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

var (
	binary  string             // the pgfleet binary under test
	cluster *pgcluster.Cluster // shared by every test; each makes its own tenants
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "pgfleet-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "pgfleet")
		build := exec.Command("go", "build", "-o", binary, ".")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build pgfleet:", err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start PostgreSQL:", err)
			return 1
		}
		defer cluster.Stop()
		return m.Run()
	}())
}

var prefixSeq struct {
	sync.Mutex
	n int
}

// newFleet makes n fresh tenants and an emulator listing them.
func newFleet(t *testing.T, n int, cfg neonapi.Config) *testenv.Fleet {
	t.Helper()
	prefixSeq.Lock()
	prefixSeq.n++
	prefix := fmt.Sprintf("t%02d", prefixSeq.n)
	prefixSeq.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Every request pgfleet sends, and every answer, is checked against
	// Neon's OpenAPI spec: a request the real API would reject fails the test.
	spec, err := neonapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Spec = spec
	f, err := testenv.StartFleet(ctx, testenv.FleetOptions{Tenants: n, Prefix: prefix, Cluster: cluster, Neon: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	t.Cleanup(func() {
		for _, v := range f.Neon.SpecViolations() {
			t.Errorf("Neon API exchange does not follow the spec: %s", v)
		}
	})
	return f
}

// run is one finished pgfleet process and everything it wrote.
type run struct {
	code     int
	stdout   string
	stderr   string
	summary  string
	outputs  map[string]string
	report   reportFile
	elapsed  time.Duration
	files    map[string]string // every file the run wrote, for leak scans
	reportOK bool
}

// tenantRecord is what every mode's JSON report says of each tenant; each
// mode's report type embeds it and adds the mode's own fields.
type tenantRecord struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

type reportFile struct {
	Mode    string `json:"mode"`
	Counts  map[string]int
	Tenants []struct {
		tenantRecord
		Reason      string   `json:"reason"`
		From        string   `json:"from_version"`
		To          string   `json:"to_version"`
		Applied     []string `json:"applied"`
		Pending     []string `json:"pending"`
		Attempts    int      `json:"attempts"`
		LockRetries int      `json:"lock_retries"`
		RolledBack  []string `json:"rolled_back"`
	} `json:"tenants"`
}

func (r reportFile) byID() map[string]int {
	m := map[string]int{}
	for i, t := range r.Tenants {
		m[t.ID] = i
	}
	return m
}

// inputs are action inputs by name; env holds extra variables.
type inputs map[string]string

func neonInputs(f *testenv.Fleet, migrations string) inputs {
	return inputs{
		"mode":           "migrate",
		"neon-api-key":   f.APIKey,
		"neon-api-url":   f.Neon.URL(),
		"migrations-dir": migrations,
	}
}

// start launches pgfleet as the Actions runner would.
func start(t *testing.T, in inputs, env ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer, string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(binary)
	// Like the runner inside a Docker action: the working directory is the
	// workspace, and relative inputs are relative to it.
	cmd.Dir = dir
	if m := in["migrations-dir"]; m != "" && m != "none" && !filepath.IsAbs(m) { // none: status reads no database
		abs, err := filepath.Abs(m)
		if err != nil {
			t.Fatal(err)
		}
		in["migrations-dir"] = abs
	}
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"GITHUB_ACTIONS=true",
		"GITHUB_WORKSPACE=" + dir,
		"RUNNER_TEMP=" + filepath.Join(dir, "runner-temp"),
		"GITHUB_STEP_SUMMARY=" + filepath.Join(dir, "summary.md"),
		"GITHUB_OUTPUT=" + filepath.Join(dir, "output.txt"),
	}
	// Like the runner: every input action.yml gives a default is passed,
	// set by the workflow or not.
	for k, v := range actionDefaults(t) {
		if _, set := in[k]; !set {
			cmd.Env = append(cmd.Env, "INPUT_"+strings.ToUpper(k)+"="+v)
		}
	}
	for k, v := range in {
		cmd.Env = append(cmd.Env, "INPUT_"+strings.ToUpper(k)+"="+v)
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stdout, &stderr, dir
}

var defaults struct {
	once sync.Once
	m    map[string]string
	err  error
}

// actionDefaults reads the inputs' defaults from action.yml.
func actionDefaults(t *testing.T) map[string]string {
	t.Helper()
	defaults.once.Do(func() {
		var action struct {
			Inputs map[string]struct {
				Default *string `yaml:"default"`
			} `yaml:"inputs"`
		}
		b, err := os.ReadFile("action.yml")
		if err == nil {
			err = yaml.Unmarshal(b, &action)
		}
		defaults.m, defaults.err = map[string]string{}, err
		for name, in := range action.Inputs {
			if in.Default != nil {
				defaults.m[name] = *in.Default
			}
		}
	})
	if defaults.err != nil {
		t.Fatal(defaults.err)
	}
	return defaults.m
}

// finish waits for a started pgfleet and collects what it wrote.
func finish(t *testing.T, cmd *exec.Cmd, stdout, stderr *bytes.Buffer, dir string, began time.Time) run {
	t.Helper()
	err := cmd.Wait()
	r := run{elapsed: time.Since(began), stdout: stdout.String(), stderr: stderr.String(), files: map[string]string{}}
	if exit, ok := err.(*exec.ExitError); ok {
		r.code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		r.files[e.Name()] = string(b)
	}
	r.summary = r.files["summary.md"]
	r.outputs = parseOutputs(r.files["output.txt"])
	if b, ok := r.files["pgfleet-migrate-report.json"]; ok || r.files["pgfleet-rollback-report.json"] != "" {
		if !ok {
			b = r.files["pgfleet-rollback-report.json"]
		}
		if err := json.Unmarshal([]byte(b), &r.report); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, b)
		}
		r.reportOK = true
	}
	return r
}

// readReport decodes the JSON report the run wrote for mode
// (pgfleet-<mode>-report.json, in the workspace) into a T; a run that wrote
// none fails the test.
func readReport[T any](t *testing.T, r run, mode string) T {
	t.Helper()
	var rep T
	b, ok := r.files["pgfleet-"+mode+"-report.json"]
	if !ok {
		t.Fatalf("no %s report in the workspace; files %v\nstdout:\n%s\nstderr:\n%s", mode, slices.Sorted(maps.Keys(r.files)), tail(r.stdout, 3000), tail(r.stderr, 2000))
	}
	if err := json.Unmarshal([]byte(b), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, tail(b, 3000))
	}
	return rep
}

func runPgfleet(t *testing.T, in inputs, env ...string) run {
	t.Helper()
	began := time.Now()
	cmd, stdout, stderr, dir := start(t, in, env...)
	return finish(t, cmd, stdout, stderr, dir, began)
}

// parseOutputs reads $GITHUB_OUTPUT as the runner does: name=value lines,
// and name<<DELIMITER heredocs for values that may span lines.
func parseOutputs(s string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if k, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(k, "=") {
			var value []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				value = append(value, lines[i])
			}
			out[k] = strings.Join(value, "\n")
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// assertNoLeak fails if any password (or the API key) appears anywhere the
// run wrote (log, errors, summary, outputs, report), other than in the
// ::add-mask:: commands that tell the runner to hide it.
func assertNoLeak(t *testing.T, r run, secrets ...string) {
	t.Helper()
	var visible strings.Builder
	for _, line := range strings.Split(r.stdout, "\n") {
		if !strings.HasPrefix(line, "::add-mask::") {
			visible.WriteString(line + "\n")
		}
	}
	visible.WriteString(r.stderr)
	for _, f := range r.files {
		visible.WriteString(f)
	}
	all := visible.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(all, s) {
			t.Fatalf("a credential leaked into the run's output or files (len %d)", len(s))
		}
	}
}

// assertMasked checks each secret was registered with ::add-mask::.
func assertMasked(t *testing.T, r run, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if !strings.Contains(r.stdout, "::add-mask::"+s+"\n") {
			t.Fatalf("a credential was never registered with ::add-mask::")
		}
	}
}

// withConn runs fn on a fresh connection to url.
func withConn(t *testing.T, url string, fn func(ctx context.Context, conn *pgx.Conn) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := fn(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

// versions lists the versions recorded in a tenant's schema_migrations (nil
// when the table does not exist).
func versions(t *testing.T, url string) []string {
	t.Helper()
	if !tableExists(t, url, "schema_migrations") {
		return nil
	}
	var vs []string
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) (err error) {
		rows, _ := conn.Query(ctx, "SELECT version FROM schema_migrations")
		vs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	sort.Strings(vs)
	return vs
}

func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, sql)
		return err
	})
}

// migrationsCopy copies testdata/migrations into a temp dir and adds files.
func migrationsCopy(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir("testdata/migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata/migrations", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
	}
	for name, body := range extra {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	return dir
}

// baseVersions are the versions of testdata/migrations.
func baseVersions(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("testdata/migrations")
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, e := range entries {
		v, _, _ := strings.Cut(e.Name(), "_")
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return vs
}

// wantOutputs fails the test unless the run set each output in want to its
// value.
func wantOutputs(t *testing.T, r run, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if r.outputs[k] != v {
			t.Fatalf("output %s = %q, want %q (all %v)\nstdout:\n%s\nstderr:\n%s", k, r.outputs[k], v, r.outputs, tail(r.stdout, 3000), tail(r.stderr, 2000))
		}
	}
}

func mustCode(t *testing.T, r run, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, tail(r.stdout, 4000), tail(r.stderr, 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// cli is pgfleet as a command on the user's machine: flags, and no Actions
// environment (PATH, a HOME of its own, and env only).
func cli(t *testing.T, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	return cmd
}

// countSleepers counts backends anywhere in the cluster running pg_sleep.
func countSleepers(t *testing.T) (n int) {
	t.Helper()
	withConn(t, cluster.AdminURL("postgres"), func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()").Scan(&n)
	})
	return n
}

func tableExists(t *testing.T, url, table string) (ok bool) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok)
	})
	return ok
}

func columnExists(t *testing.T, url, table, column string) (ok bool) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2)", table, column).Scan(&ok)
	})
	return ok
}

// runAndTerminate starts pgfleet, waits until ready() holds (failing after
// wait with what stalled), sends SIGTERM, and returns the finished run and
// how long it took to exit after the signal, which must be within the 10
// seconds GitHub allows before SIGKILL.
func runAndTerminate(t *testing.T, in inputs, env []string, wait time.Duration, stalled string, ready func() bool) (run, time.Duration) {
	t.Helper()
	began := time.Now()
	cmd, stdout, stderr, dir := start(t, in, env...)
	deadline := time.Now().Add(wait)
	for !ready() {
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n%s", stalled, stdout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	signalled := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	r := finish(t, cmd, stdout, stderr, dir, began)
	took := time.Since(signalled)
	if took > 10*time.Second {
		t.Fatalf("exited %s after SIGTERM, want within 10s", took)
	}
	return r, took
}
