// Package pgcluster runs a throwaway local PostgreSQL cluster for tests,
// benchmarks and the demo.
//
// A cluster listens on 127.0.0.1 only, on a free port, and requires
// scram-sha-256 passwords for every TCP connection; its unix socket (trust
// auth) lives inside the cluster directory. Tenants are databases each owned
// by their own LOGIN role, with CONNECT revoked from PUBLIC, so a tenant's
// credentials reach only its own database, as with real Neon projects.
//
// PostgreSQL refuses to run as root. When the process runs as root, every
// server-side command (initdb, pg_ctl and therefore postgres) runs as the
// unprivileged "postgres" OS user through `runuser -u postgres --`, and the
// cluster directory is chowned to that user.
//
// Cleanup: Stop stops the server and removes the directory; StartForTest
// registers it with tb.Cleanup, which runs even when the test panics. In case
// the whole process is killed (SIGKILL, a timeout, an uncaught signal) Start
// also launches a tiny shell watchdog in its own session that polls the
// process id once a second and, once the process is gone, stops the server
// (pg_ctl stop -m immediate) and removes the directory Start created.
package pgcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/testenv/freeport"
)

// Superuser is the name of the cluster's superuser role.
const Superuser = "postgres"

// runAsUser is the OS user the server runs as when the process is root.
const runAsUser = "postgres"

// ErrNotFound is returned (wrapped) by FindBinDir, Start and StartForTest
// when no PostgreSQL server binaries can be found.
var ErrNotFound = errors.New("pgcluster: PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; " +
	"install them with `apt-get install postgresql` (Debian/Ubuntu; the binaries land in /usr/lib/postgresql/<version>/bin) " +
	"or put the directory that holds initdb and pg_ctl on PATH")

// Options configures Start. The zero value is usable.
type Options struct {
	// Dir is where the cluster lives (created if missing; it must not
	// already hold a cluster). Default: a new directory that Stop removes,
	// under /dev/shm when that is a tmpfs with at least 4 GiB free (much
	// faster CREATE DATABASE), else under /tmp. A Dir given here is left in place by Stop, though the
	// files Start put in it are removed.
	Dir string
	// MaxConnections is the server's max_connections. Default 300.
	MaxConnections int
	// Durable keeps PostgreSQL's crash-safety settings. Default false:
	// fsync=off, synchronous_commit=off and full_page_writes=off, for speed.
	Durable bool
	// Log, when set, receives the output of initdb and pg_ctl as they run,
	// and the server log when the cluster stops.
	Log io.Writer
}

// Cluster is a running PostgreSQL cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	binDir   string
	dir      string   // cluster root: data/, s/ (socket), server.log
	dataDir  string   // PGDATA
	sockDir  string   // unix_socket_directories
	logFile  string   // server log written by pg_ctl -l
	remove   []string // directories Stop removes
	runAs    string   // "" = current user, else OS user for runuser
	password string   // superuser password
	port     int
	log      io.Writer

	watchdog *exec.Cmd

	mu      sync.Mutex
	stopped bool
	stopErr error
}

// TenantDB is one tenant: a database owned by its own LOGIN role.
//
// URL and Password are credentials; String leaves them out.
type TenantDB struct {
	Name     string // database name
	Role     string // owning LOGIN role
	Password string // the role's password
	URL      string // postgresql://role:pw@127.0.0.1:port/name?sslmode=disable
}

// String names the tenant without its credentials.
func (t TenantDB) String() string { return t.Name + " (role " + t.Role + ")" }

// FindBinDir returns the directory holding initdb and pg_ctl: the one on
// PATH if any, else the highest-versioned /usr/lib/postgresql/*/bin.
// The error wraps ErrNotFound and says how to install PostgreSQL.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// Through a symlink (/usr/local/bin/initdb -> .../15/bin/initdb) to
		// the folder that holds every tool of that version, pg_dump too.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if hasServerBins(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type cand struct {
		dir string
		ver []int
	}
	var cands []cand
	for _, d := range dirs {
		if !hasServerBins(d) {
			continue
		}
		cands = append(cands, cand{d, parseVersion(filepath.Base(filepath.Dir(d)))})
	}
	if len(cands) == 0 {
		return "", ErrNotFound
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i].ver, cands[j].ver
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] > b[k]
			}
		}
		return len(a) > len(b)
	})
	return cands[0].dir, nil
}

func hasServerBins(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// parseVersion turns "15" or "9.6" into comparable numbers; non-numeric
// parts sort lowest.
func parseVersion(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			n = -1
		}
		v = append(v, n)
	}
	return v
}

// Start creates and starts a cluster and waits until it accepts password
// connections over TCP. On failure everything it created is removed and the
// error includes the tail of the server log.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 300
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}

	c = &Cluster{binDir: binDir, log: o.Log}
	if os.Geteuid() == 0 {
		c.runAs = runAsUser
	}
	uid, gid, err := c.owner()
	if err != nil {
		return nil, err
	}

	// Undo everything on failure. Before the server starts, Stop's pg_ctl
	// stop is a harmless no-op.
	defer func() {
		if err != nil {
			_ = c.Stop()
			c = nil
		}
	}()

	if o.Dir == "" {
		// A short path (not $TMPDIR): the socket lives inside it.
		c.dir, err = os.MkdirTemp(defaultBase(), "pgcluster-")
		if err != nil {
			if c.dir, err = os.MkdirTemp("/tmp", "pgcluster-"); err != nil {
				return c, fmt.Errorf("pgcluster: %w", err)
			}
		}
		c.remove = append(c.remove, c.dir)
	} else {
		if c.dir, err = filepath.Abs(o.Dir); err != nil {
			return c, fmt.Errorf("pgcluster: %w", err)
		}
		if err = os.MkdirAll(c.dir, 0o755); err != nil {
			return c, fmt.Errorf("pgcluster: %w", err)
		}
		if _, serr := os.Stat(filepath.Join(c.dir, "data")); serr == nil {
			return c, fmt.Errorf("pgcluster: %s already holds a cluster (data/ exists)", c.dir)
		}
	}
	c.dataDir = filepath.Join(c.dir, "data")
	c.logFile = filepath.Join(c.dir, "server.log")
	if o.Dir != "" {
		// Stop removes what Start put in a caller's Dir, not Dir itself.
		c.remove = append(c.remove, c.dataDir, c.logFile)
	}
	if err = prepareDir(c.dir, uid, gid); err != nil {
		return c, err
	}

	// Socket: inside the cluster dir when the path is short enough
	// (sun_path is 108 bytes), else in a short directory of its own.
	c.sockDir = filepath.Join(c.dir, "s")
	if len(c.sockDir)+len("/.s.PGSQL.65535.lock") > 100 {
		if c.sockDir, err = os.MkdirTemp("/tmp", "pgs-"); err != nil {
			return c, fmt.Errorf("pgcluster: %w", err)
		}
		c.remove = append(c.remove, c.sockDir)
	} else {
		if err = os.Mkdir(c.sockDir, 0o755); err != nil {
			return c, fmt.Errorf("pgcluster: %w", err)
		}
		if o.Dir != "" {
			c.remove = append(c.remove, c.sockDir)
		}
	}
	if err = prepareDir(c.sockDir, uid, gid); err != nil {
		return c, err
	}
	if c.runAs != "" {
		// The server user must be able to reach the directories.
		if out, cerr := c.cmd(ctx, "test", "-w", c.dir, "-a", "-x", c.dir).CombinedOutput(); cerr != nil {
			return c, fmt.Errorf("pgcluster: OS user %q cannot write %s (every parent directory must be traversable by it, as /tmp and /dev/shm are): %v %s",
				c.runAs, c.dir, cerr, out)
		}
	}

	// The watchdog goes up before the server so no server ever runs
	// unwatched.
	if err = c.startWatchdog(); err != nil {
		return c, err
	}

	if c.password, err = randomToken(); err != nil {
		return c, err
	}
	if err = c.initdb(ctx, uid, gid, o); err != nil {
		return c, err
	}
	if err = c.startServer(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// tmpfsMagic is TMPFS_MAGIC from statfs(2).
const tmpfsMagic = 0x01021994

// minShmFree is how much free space /dev/shm needs before clusters go there
// by default: a tenant database is ~8 MB, so 4 GiB holds a few hundred.
const minShmFree = 4 << 30

// defaultBase picks where default cluster directories go: /dev/shm when it
// is a tmpfs with room to spare, else /tmp. Creating databases is file
// metadata work; on a disk-backed /tmp, CREATE DATABASE can take ~100 ms
// even with fsync=off, on tmpfs ~15 ms. Docker's default 64 MB /dev/shm
// fails the size check.
func defaultBase() string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Type == tmpfsMagic &&
		st.Bavail*uint64(st.Bsize) >= minShmFree {
		return "/dev/shm"
	}
	return "/tmp"
}

// owner returns the uid/gid that must own the cluster files.
func (c *Cluster) owner() (uid, gid int, err error) {
	if c.runAs == "" {
		return os.Geteuid(), os.Getegid(), nil
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		return 0, 0, errors.New("pgcluster: running as root needs runuser (util-linux) to start PostgreSQL as the postgres user")
	}
	u, err := user.Lookup(c.runAs)
	if err != nil {
		return 0, 0, fmt.Errorf("pgcluster: PostgreSQL refuses to run as root and there is no %q OS user to run it as "+
			"(it comes with `apt-get install postgresql`; or run the tests as a non-root user): %w", c.runAs, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func prepareDir(dir string, uid, gid int) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if uid != os.Geteuid() || gid != os.Getegid() {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
	}
	return nil
}

// cmd builds a command that runs as the server user. Commands run with the
// cluster dir as working directory: the server user may not be able to
// enter the caller's.
func (c *Cluster) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	return cmd
}

// run runs a server-user command, teeing its output to the Log writer, and
// returns its output in the error.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	var out bytes.Buffer
	cmd := c.cmd(ctx, filepath.Join(c.binDir, name), args...)
	var w io.Writer = &out
	if c.log != nil {
		w = io.MultiWriter(&out, c.log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// pg_ctl start leaves the server holding the output pipe; with
	// WaitDelay, Wait returns once pg_ctl has exited anyway.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil && !(errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		return fmt.Errorf("pgcluster: %s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context, uid, gid int, o Options) error {
	pwfile := filepath.Join(c.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer os.Remove(pwfile)
	if err := os.Chown(pwfile, uid, gid); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	args := []string{
		"-D", c.dataDir,
		"-U", Superuser,
		"--pwfile=" + pwfile,
		"--auth-local=trust",
		"--auth-host=scram-sha-256",
		"-E", "UTF8",
		"--locale=C",
	}
	if !o.Durable {
		args = append(args, "--no-sync")
	}
	if err := c.run(ctx, "initdb", args...); err != nil {
		return err
	}

	hba := "# pgcluster: trust on the socket, passwords over TCP, IPv4 loopback only.\n" +
		"local all all trust\n" +
		"local replication all trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n" +
		"host replication all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(c.dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}

	conf := fmt.Sprintf("\n# pgcluster\n"+
		"listen_addresses = '127.0.0.1'\n"+
		"unix_socket_directories = '%s'\n"+
		"unix_socket_permissions = 0777\n"+
		"max_connections = %d\n"+
		"password_encryption = 'scram-sha-256'\n"+
		"logging_collector = off\n"+
		"log_min_messages = warning\n"+
		"log_line_prefix = '%%m [%%p] '\n",
		strings.ReplaceAll(c.sockDir, "'", "''"), o.MaxConnections)
	if !o.Durable {
		conf += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// startServer starts postgres on a free port, retrying with another port
// when the chosen one was taken meanwhile.
func (c *Cluster) startServer(ctx context.Context) error {
	const attempts = 5
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		port, err := freeport.Get()
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		logOffset := fileSize(c.logFile)
		timeout := 60
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(1, int(time.Until(dl).Seconds()))
		}
		err = c.run(ctx, "pg_ctl", "start", "-w", "-t", strconv.Itoa(timeout),
			"-D", c.dataDir, "-l", c.logFile, "-o", "-p "+strconv.Itoa(port))
		if err == nil {
			c.port = port
			if err = c.waitReady(ctx); err == nil {
				return nil
			}
			return fmt.Errorf("%w\nserver log (tail):\n%s", err, c.logTail(0))
		}
		lastErr = fmt.Errorf("%w\nserver log (tail):\n%s", err, c.logTail(logOffset))
		if !portTaken(c.logTail(logOffset)) || ctx.Err() != nil {
			return lastErr
		}
		// Make sure nothing is left running before retrying.
		_ = c.run(context.Background(), "pg_ctl", "stop", "-D", c.dataDir, "-m", "immediate", "-w", "-t", "10")
	}
	return lastErr
}

func portTaken(log string) bool {
	return strings.Contains(log, "could not bind") || strings.Contains(log, "Address already in use")
}

// waitReady connects over TCP with the superuser password until it works.
func (c *Cluster) waitReady(ctx context.Context) error {
	var lastErr error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, c.AdminURL("postgres"))
		if err == nil {
			err = conn.Ping(cctx)
			conn.Close(cctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: server on port %d does not accept connections: %w (last error: %v)", c.port, ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns the last lines of the server log written after offset.
func (c *Cluster) logTail(offset int64) string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	if offset > 0 && offset <= int64(len(b)) {
		b = b[offset:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// watchdogScript waits for the process $1 to die, then stops the server in
// $2 with pg_ctl $3 (as OS user $4 if set) and removes the remaining args.
const watchdogScript = `parent=$1 data=$2 pgctl=$3 runas=$4
shift 4
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
if [ -f "$data/postmaster.pid" ]; then
	if [ -n "$runas" ]; then
		runuser -u "$runas" -- "$pgctl" stop -D "$data" -m immediate -w -t 10
	else
		"$pgctl" stop -D "$data" -m immediate -w -t 10
	fi
fi
[ $# -gt 0 ] && rm -rf -- "$@"
exit 0
`

func (c *Cluster) startWatchdog() error {
	args := []string{"-c", watchdogScript, "pgcluster-watchdog",
		strconv.Itoa(os.Getpid()), c.dataDir, filepath.Join(c.binDir, "pg_ctl"), c.runAs}
	args = append(args, c.remove...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = "/"
	// Own session: a Ctrl-C to the test's process group must not take the
	// watchdog down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgcluster: starting watchdog: %w", err)
	}
	c.watchdog = cmd
	return nil
}

func (c *Cluster) stopWatchdog() {
	if c.watchdog == nil {
		return
	}
	// The watchdog leads its own process group (Setsid): signal the group
	// so its sleep goes too.
	_ = syscall.Kill(-c.watchdog.Process.Pid, syscall.SIGKILL)
	_ = c.watchdog.Wait()
	c.watchdog = nil
}

// Stop stops the server (pg_ctl stop -m fast, then -m immediate) and removes
// the directories Start created. It is idempotent: later calls return the
// first call's result.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return c.stopErr
	}
	c.stopped = true

	var errs []error
	if c.dataDir != "" && fileSize(filepath.Join(c.dataDir, "postmaster.pid")) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir, "-m", "fast", "-w", "-t", "10"); err != nil {
			if err2 := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir, "-m", "immediate", "-w", "-t", "10"); err2 != nil {
				errs = append(errs, err, err2)
			}
		}
		cancel()
	}
	// Only now: if Stop itself is interrupted the watchdog still cleans up.
	c.stopWatchdog()
	if c.log != nil {
		if f, err := os.Open(c.logFile); err == nil {
			fmt.Fprintf(c.log, "--- pgcluster server log (%s) ---\n", c.logFile)
			_, _ = io.Copy(c.log, f)
			f.Close()
		}
	}
	for _, p := range c.remove {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: %w", err))
		}
	}
	c.stopErr = errors.Join(errs...)
	return c.stopErr
}

// Port is the TCP port the server listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Dir is the cluster's directory.
func (c *Cluster) Dir() string { return c.dir }

// ServerPID is the postmaster's process id (benchmarks read its CPU time,
// which counts the backends it has reaped).
func (c *Cluster) ServerPID() (int, error) {
	raw, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// SocketDir is the directory holding the server's unix socket (trust auth,
// superuser "postgres").
func (c *Cluster) SocketDir() string { return c.sockDir }

// AdminURL is a superuser URL for database db over TCP 127.0.0.1, password
// included.
func (c *Cluster) AdminURL(db string) string {
	return c.url(Superuser, c.password, db)
}

func (c *Cluster) url(role, password, db string) string {
	u := url.URL{
		Scheme:   "postgresql",
		User:     url.UserPassword(role, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// identRE matches the names pgcluster generates and accepts: lower-case,
// so they need no quoting in SQL or URLs (they are quoted anyway).
var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// roleSuffix turns a database name into its owner role's name.
const roleSuffix = "_owner"

// maxIdent is PostgreSQL's NAMEDATALEN-1.
const maxIdent = 63

func checkName(name string) error {
	if !identRE.MatchString(name) || len(name)+len(roleSuffix) > maxIdent {
		return fmt.Errorf("pgcluster: bad tenant name %q: want [a-z_][a-z0-9_]*, at most %d bytes", name, maxIdent-len(roleSuffix))
	}
	return nil
}

// tenantWorkers is how many admin connections CreateTenants uses. CREATE
// DATABASE ... STRATEGY FILE_COPY waits for checkpoints, which concurrent
// creations share: two or more workers more than double the rate.
const tenantWorkers = 4

// CreateTenants creates n tenants named prefix_0001 … prefix_n (zero-padded
// to at least four digits), in order in the result. It uses a few admin
// connections in parallel (never one per tenant). On failure the tenants it
// created are dropped again.
func (c *Cluster) CreateTenants(ctx context.Context, prefix string, n int) ([]TenantDB, error) {
	if n < 0 {
		return nil, fmt.Errorf("pgcluster: CreateTenants: n = %d", n)
	}
	if n == 0 {
		return []TenantDB{}, nil
	}
	width := max(4, len(strconv.Itoa(n)))
	name := func(i int) string { return fmt.Sprintf("%s_%0*d", prefix, width, i+1) }
	if err := checkName(name(n - 1)); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := min(tenantWorkers, n)
	conns := make([]*pgx.Conn, 0, workers)
	defer func() {
		for _, conn := range conns {
			conn.Close(context.Background())
		}
	}()
	for range workers {
		conn, err := c.admin(ctx)
		if err != nil {
			return nil, err
		}
		conns = append(conns, conn)
	}

	tenants := make([]TenantDB, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				tenants[i], errs[i] = c.createTenant(ctx, conn, name(i))
				if errs[i] != nil {
					cancel()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	// Report the first real error, not the cancellations it caused.
	var firstErr error
	for _, err := range errs {
		if err != nil && (firstErr == nil || errors.Is(firstErr, context.Canceled) && !errors.Is(err, context.Canceled)) {
			firstErr = err
		}
	}
	if firstErr == nil && ctx.Err() != nil { // canceled by the caller
		firstErr = fmt.Errorf("pgcluster: CreateTenants: %w", ctx.Err())
	}
	if firstErr != nil {
		// Each tenant was created whole or not at all (see createTenant),
		// so dropping the successful ones leaves nothing behind.
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		for i, t := range tenants {
			if errs[i] == nil && t.Name != "" {
				_ = dropTenant(cctx, conns[0], t)
			}
		}
		return nil, firstErr
	}
	return tenants, nil
}

// CreateTenant creates database name owned by the new LOGIN role
// name_owner with a random password, and revokes CONNECT (and TEMPORARY)
// on it from PUBLIC so other tenants' roles cannot connect. Names must be
// [a-z_][a-z0-9_]*. The creation is all or nothing; ctx is checked before
// it starts, not in the middle.
func (c *Cluster) CreateTenant(ctx context.Context, name string) (TenantDB, error) {
	if err := checkName(name); err != nil {
		return TenantDB{}, err
	}
	conn, err := c.admin(ctx)
	if err != nil {
		return TenantDB{}, err
	}
	defer conn.Close(context.Background())
	return c.createTenant(ctx, conn, name)
}

// DropTenant drops the tenant's database (disconnecting its sessions) and
// its role.
func (c *Cluster) DropTenant(ctx context.Context, t TenantDB) error {
	if err := checkName(t.Name); err != nil {
		return err
	}
	conn, err := c.admin(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return dropTenant(ctx, conn, t)
}

func (c *Cluster) admin(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.AdminURL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("pgcluster: admin connection: %w", err)
	}
	return conn, nil
}

// tenantStepTimeout bounds each statement of a tenant's creation.
const tenantStepTimeout = time.Minute

// createTenant creates one tenant, all or nothing. ctx is only checked
// before starting: a cancellation arriving mid-way would otherwise leave
// pgx unable to tell whether the statement it interrupted took effect (and
// close the connection that the undo needs).
func (c *Cluster) createTenant(ctx context.Context, conn *pgx.Conn, name string) (TenantDB, error) {
	if err := ctx.Err(); err != nil {
		return TenantDB{}, fmt.Errorf("pgcluster: creating tenant %s: %w", name, err)
	}
	pw, err := randomToken()
	if err != nil {
		return TenantDB{}, err
	}
	t := TenantDB{Name: name, Role: name + roleSuffix, Password: pw}
	t.URL = c.url(t.Role, t.Password, t.Name)
	db := pgx.Identifier{t.Name}.Sanitize()
	role := pgx.Identifier{t.Role}.Sanitize()
	execSQL := func(sql string) error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tenantStepTimeout)
		defer cancel()
		_, err := conn.Exec(sctx, sql)
		return err
	}

	// CREATE DATABASE cannot run in a transaction block, so not in a
	// multi-statement string either: one Exec each, undone by hand.
	if err := execSQL("CREATE ROLE " + role + " LOGIN PASSWORD " + quoteLiteral(pw)); err != nil {
		return TenantDB{}, fmt.Errorf("pgcluster: creating role %s: %w", t.Role, err)
	}
	create := "CREATE DATABASE " + db + " OWNER " + role
	if serverMajor(conn) >= 15 {
		// The default WAL_LOG strategy pushes every page of the template
		// through the WAL; copying files is faster for a small template.
		create += " STRATEGY FILE_COPY"
	}
	if err := execSQL(create); err != nil {
		_ = execSQL("DROP ROLE IF EXISTS " + role)
		return TenantDB{}, fmt.Errorf("pgcluster: creating database %s: %w", t.Name, err)
	}
	// The owner keeps CONNECT; other tenants' roles lose it.
	if err := execSQL("REVOKE CONNECT, TEMPORARY ON DATABASE " + db + " FROM PUBLIC"); err != nil {
		_ = execSQL("DROP DATABASE IF EXISTS " + db)
		_ = execSQL("DROP ROLE IF EXISTS " + role)
		return TenantDB{}, fmt.Errorf("pgcluster: isolating database %s: %w", t.Name, err)
	}
	return t, nil
}

// serverMajor is the server's major version, 0 if unknown.
func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

func dropTenant(ctx context.Context, conn *pgx.Conn, t TenantDB) error {
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{t.Name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgcluster: dropping database %s: %w", t.Name, err)
	}
	if t.Role != "" {
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{t.Role}.Sanitize()); err != nil {
			return fmt.Errorf("pgcluster: dropping role %s: %w", t.Role, err)
		}
	}
	return nil
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// randomToken returns 24 URL-safe characters from 18 random bytes.
func randomToken() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
