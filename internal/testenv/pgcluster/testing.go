package pgcluster

// What tests use: a cluster of a test's own (StartForTest), one shared by
// a package's tests (Shared), and a connection closed when the test ends.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartForTest starts a cluster for tb and registers Stop with tb.Cleanup
// (which runs even if the test panics). It calls tb.Fatal, with a message
// saying how to install PostgreSQL, when none is found.
func StartForTest(tb testing.TB) *Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("pgcluster: stopping test cluster: %v", err)
		}
	})
	return c
}

// Shared is one cluster for a whole test package, started on the first
// test that asks for a tenant (so `go test -run` of tests that need none
// starts nothing) and stopped by Main when the package's tests end. Each
// test makes its own tenants on it, so the tests can run in parallel. The
// zero value is ready to use, as a package variable:
//
//	var cluster pgcluster.Shared
//
//	func TestMain(m *testing.M) { cluster.Main(m) }
type Shared struct {
	once    sync.Once
	cluster *Cluster
	err     error

	mu sync.Mutex
	n  int
}

// Main runs the package's tests, stops the cluster if one was started, and
// exits with the tests' status.
func (s *Shared) Main(m *testing.M) {
	code := m.Run()
	if s.cluster != nil {
		if err := s.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop test cluster:", err)
		}
	}
	os.Exit(code)
}

// Cluster starts the cluster on first use and returns it; tb fails if it
// cannot start (saying how to install PostgreSQL when none is found).
func (s *Shared) Cluster(tb testing.TB) *Cluster {
	tb.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s.cluster, s.err = Start(ctx, Options{})
	})
	if s.err != nil {
		tb.Fatal(s.err)
	}
	return s.cluster
}

// NewTenant creates a fresh tenant database on the cluster, named prefix
// and a number no other tenant of the package has (prefix_001, ...).
func (s *Shared) NewTenant(tb testing.TB, prefix string) TenantDB {
	tb.Helper()
	c := s.Cluster(tb)
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("%s_%03d", prefix, s.n)
	s.mu.Unlock()
	return c.TenantForTest(tb, name)
}

// TenantForTest creates the tenant database name on c (with its own
// owner), or ends the test.
func (c *Cluster) TenantForTest(tb testing.TB, name string) TenantDB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := c.CreateTenant(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// Connect opens a connection to url, closed when tb ends.
func Connect(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
