package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func portAnswers(port int) bool {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func TestCluster(t *testing.T) {
	ctx := testCtx(t)
	c := StartForTest(t)

	if c.Port() <= 0 || !portAnswers(c.Port()) {
		t.Fatalf("port %d does not answer", c.Port())
	}
	admin, err := pgx.Connect(ctx, c.AdminURL("postgres"))
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	defer admin.Close(ctx)
	var super bool
	var maxConns string
	if err := admin.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || !super {
		t.Fatalf("admin is superuser = %v, err %v", super, err)
	}
	if err := admin.QueryRow(ctx, "SHOW max_connections").Scan(&maxConns); err != nil || maxConns != "300" {
		t.Errorf("max_connections = %q, err %v; want 300", maxConns, err)
	}
	var listen string
	if err := admin.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil || listen != "127.0.0.1" {
		t.Errorf("listen_addresses = %q, err %v", listen, err)
	}

	tenants, err := c.CreateTenants(ctx, "acme", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(tenants) != 3 {
		t.Fatalf("got %d tenants, want 3", len(tenants))
	}
	for i, tn := range tenants {
		wantName := fmt.Sprintf("acme_%04d", i+1)
		if tn.Name != wantName || tn.Role == "" || len(tn.Password) != 24 {
			t.Errorf("tenant %d = %s, password length %d; want name %s and a 24-char password", i, tn, len(tn.Password), wantName)
		}
		if strings.Contains(tn.String(), tn.Password) {
			t.Errorf("TenantDB.String leaks the password")
		}
		want := fmt.Sprintf("postgresql://%s:%s@127.0.0.1:%d/%s?sslmode=disable", tn.Role, tn.Password, c.Port(), tn.Name)
		if tn.URL != want {
			t.Errorf("URL = %q, want %q", tn.URL, want)
		}

		// Each tenant reaches its own database as its owner and can build
		// a schema there.
		conn, err := pgx.Connect(ctx, tn.URL)
		if err != nil {
			t.Fatalf("tenant %s connect: %v", tn, err)
		}
		var db, usr string
		var owner bool
		err = conn.QueryRow(ctx, `SELECT current_database(), current_user,
			(SELECT pg_get_userbyid(datdba) = current_user FROM pg_database WHERE datname = current_database())`).Scan(&db, &usr, &owner)
		if err != nil || db != tn.Name || usr != tn.Role || !owner {
			t.Errorf("tenant %s: db %q user %q owner %v err %v", tn, db, usr, owner, err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)"); err != nil {
			t.Errorf("tenant %s cannot create a table in its own database: %v", tn, err)
		}
		conn.Close(ctx)
	}

	// Isolation: tenant 1's role cannot connect to tenant 2's database.
	other := strings.Replace(tenants[0].URL, "/"+tenants[0].Name+"?", "/"+tenants[1].Name+"?", 1)
	if conn, err := pgx.Connect(ctx, other); err == nil {
		conn.Close(ctx)
		t.Errorf("tenant %s connected to %s", tenants[0], tenants[1].Name)
	} else if sqlState(err) != "42501" { // insufficient_privilege
		t.Errorf("cross-tenant connect: want permission denied (42501), got %v", err)
	}

	// A wrong password fails.
	bad := strings.Replace(tenants[2].URL, ":"+tenants[2].Password+"@", ":wrong-password@", 1)
	if conn, err := pgx.Connect(ctx, bad); err == nil {
		conn.Close(ctx)
		t.Errorf("connected with a wrong password")
	} else if sqlState(err) != "28P01" { // invalid_password
		t.Errorf("wrong password: want 28P01, got %v", err)
	}
	// So does the superuser's.
	badAdmin := strings.Replace(c.AdminURL("postgres"), ":"+c.password+"@", ":nope@", 1)
	if conn, err := pgx.Connect(ctx, badAdmin); err == nil {
		conn.Close(ctx)
		t.Errorf("superuser connected with a wrong password")
	}

	// CreateTenant with a chosen name, then DropTenant.
	solo, err := c.CreateTenant(ctx, "solo")
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := pgx.Connect(ctx, solo.URL); err != nil {
		t.Errorf("solo connect: %v", err)
	} else {
		conn.Close(ctx)
	}
	// Drop must work even while the tenant has a session open.
	held, err := pgx.Connect(ctx, solo.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)
	if err := c.DropTenant(ctx, solo); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'solo'").Scan(&n); err != nil || n != 0 {
		t.Errorf("solo database still there (count %d, err %v)", n, err)
	}
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", solo.Role).Scan(&n); err != nil || n != 0 {
		t.Errorf("solo role still there (count %d, err %v)", n, err)
	}

	for _, bad := range []string{"", "Upper", "has-dash", "1digit", `quo"te`, strings.Repeat("x", 60)} {
		if _, err := c.CreateTenant(ctx, bad); err == nil {
			t.Errorf("CreateTenant(%q) accepted a bad name", bad)
		}
	}
}

// TestCreateTenantsFailure: when one tenant cannot be created, CreateTenants
// fails and drops the ones it did create, leaving older tenants alone.
func TestCreateTenantsFailure(t *testing.T) {
	ctx := testCtx(t)
	c := StartForTest(t)
	pre, err := c.CreateTenant(ctx, "dup_0005")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.CreateTenants(ctx, "dup", 9)
	if err == nil || got != nil {
		t.Fatalf("CreateTenants over an existing tenant: got %d tenants, err %v", len(got), err)
	}
	if !strings.Contains(err.Error(), "dup_0005") {
		t.Errorf("error does not name the failing tenant: %v", err)
	}
	admin, err := pgx.Connect(ctx, c.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var dbs, roles []string
	rows, _ := admin.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'dup%' ORDER BY 1")
	if dbs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	rows, _ = admin.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname LIKE 'dup%' ORDER BY 1")
	if roles, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if strings.Join(dbs, ",") != pre.Name || strings.Join(roles, ",") != pre.Role {
		t.Errorf("left behind: databases %v roles %v; want only %s", dbs, roles, pre)
	}
	if conn, err := pgx.Connect(ctx, pre.URL); err != nil {
		t.Errorf("pre-existing tenant broken: %v", err)
	} else {
		conn.Close(ctx)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.CreateTenants(cctx, "gone", 3); err == nil {
		t.Error("CreateTenants with a canceled context succeeded")
	}
}

func TestStopRemovesDirAndPort(t *testing.T) {
	ctx := testCtx(t)
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	dir, port := c.Dir(), c.Port()
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, "/tmp/") && !strings.HasPrefix(dir, "/dev/shm/") {
		t.Errorf("dir %s is under neither /tmp nor /dev/shm", dir)
	}
	if !strings.HasPrefix(c.SocketDir(), dir+"/") {
		t.Errorf("socket dir %s is not inside %s", c.SocketDir(), dir)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir %s still exists after Stop (stat err %v)", dir, err)
	}
	if portAnswers(port) {
		t.Errorf("port %d still answers after Stop", port)
	}
}

func TestOptionsDirKeptAndDurable(t *testing.T) {
	ctx := testCtx(t)
	parent, err := os.MkdirTemp("/tmp", "pgcluster-opt-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	if err := os.Chmod(parent, 0o755); err != nil { // traversable by the server user
		t.Fatal(err)
	}
	var log strings.Builder
	c, err := Start(ctx, Options{Dir: parent + "/c", MaxConnections: 50, Durable: true, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	conn, err := pgx.Connect(ctx, c.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var fsync, maxConns string
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('max_connections')").Scan(&fsync, &maxConns); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if fsync != "on" || maxConns != "50" {
		t.Errorf("fsync=%s max_connections=%s; want on, 50", fsync, maxConns)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(parent + "/c"); err != nil {
		t.Errorf("caller's Dir was removed: %v", err)
	}
	if _, err := os.Stat(parent + "/c/data"); !os.IsNotExist(err) {
		t.Errorf("data dir left behind: %v", err)
	}
	if !strings.Contains(log.String(), "pgcluster server log") {
		t.Errorf("Log did not get the server log:\n%s", log.String())
	}
}

func TestCreateTenants200(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := testCtx(t)
	c := StartForTest(t)
	start := time.Now()
	tenants, err := c.CreateTenants(ctx, "fleet", 200)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	t.Logf("CreateTenants(200) took %v", elapsed.Round(time.Millisecond))
	if len(tenants) != 200 || tenants[199].Name != "fleet_0200" {
		t.Fatalf("got %d tenants, last %v", len(tenants), tenants[len(tenants)-1])
	}
	seen := map[string]bool{}
	for _, tn := range tenants {
		if seen[tn.Password] {
			t.Fatalf("duplicate password")
		}
		seen[tn.Password] = true
	}
	conn, err := pgx.Connect(ctx, tenants[199].URL)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}

// TestWatchdog kills a process that started a cluster with SIGKILL and
// checks that the server goes away and its directory is removed.
func TestWatchdog(t *testing.T) {
	if os.Getenv("PGCLUSTER_WATCHDOG_CHILD") == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := Start(ctx, Options{})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Printf("READY %d %s\n", c.Port(), c.Dir())
		time.Sleep(time.Minute) // killed by the parent
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdog$")
	cmd.Env = append(os.Environ(), "PGCLUSTER_WATCHDOG_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY ") {
		t.Fatalf("child: %q %v", line, err)
	}
	f := strings.Fields(line)
	port, _ := strconv.Atoi(f[1])
	dir := f[2]
	if !portAnswers(port) {
		t.Fatalf("child's cluster does not answer on %d", port)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, statErr := os.Stat(dir)
		if !portAnswers(port) && os.IsNotExist(statErr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGKILL of the owner: port %d answers=%v, dir %s stat=%v", port, portAnswers(port), dir, statErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "apt-get install postgresql") {
			t.Fatalf("error does not say how to install: %v", err)
		}
		t.Fatal(err)
	}
	if !hasServerBins(dir) {
		t.Fatalf("%s lacks initdb/pg_ctl/postgres", dir)
	}
	t.Setenv("PATH", "/nonexistent")
	if d, err := FindBinDir(); err != nil && !strings.HasPrefix(dir, "/usr/lib/postgresql/") {
		t.Logf("without PATH: %v (binaries came from PATH: %s)", err, dir)
	} else if err != nil {
		t.Fatalf("without PATH: %v", err)
	} else if !strings.HasPrefix(d, "/usr/lib/postgresql/") {
		t.Errorf("without PATH got %s", d)
	}
}

func TestParseVersionOrder(t *testing.T) {
	less := func(a, b string) bool {
		va, vb := parseVersion(a), parseVersion(b)
		for i := 0; i < len(va) && i < len(vb); i++ {
			if va[i] != vb[i] {
				return va[i] < vb[i]
			}
		}
		return len(va) < len(vb)
	}
	if !less("9.6", "10") || !less("15", "17") || less("18", "9.6") {
		t.Error("version order wrong")
	}
}
