package pgconnect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// proxy is a TCP proxy to a PostgreSQL server that can refuse service the
// way a Neon compute does while it wakes up: it accepts the connection and
// closes it at once.
//
// It reads the first 8 bytes of each connection (length and protocol code)
// to tell the client's connection attempts from the CancelRequest
// connections pgx opens by itself: after a failed startup read pgx closes
// the connection asynchronously and sends a CancelRequest over a second
// connection. Counting those as attempts would make the counts, and which
// attempt gets dropped, depend on pgx's internals.
type proxy struct {
	ln       net.Listener
	target   string
	drop     func(n int) bool // n counts startup connections from 1
	startups atomic.Int32     // connection attempts (StartupMessage)
	cancels  atomic.Int32     // pgx's CancelRequest connections

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

const cancelRequestCode = 80877102

func startProxy(t *testing.T, targetPort int, drop func(n int) bool) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: net.JoinHostPort("127.0.0.1", strconv.Itoa(targetPort)), drop: drop}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
		t.Logf("proxy: %d connection attempts, %d cancel requests", p.startups.Load(), p.cancels.Load())
	})
	return p
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			var head [8]byte
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, head[:]); err != nil {
				return
			}
			c.SetReadDeadline(time.Time{})
			if binary.BigEndian.Uint32(head[4:]) == cancelRequestCode {
				p.cancels.Add(1)
				return
			}
			if p.drop(int(p.startups.Add(1))) {
				return // the compute is not up yet
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			p.track(up)
			defer up.Close()
			if _, err := up.Write(head[:]); err != nil {
				return
			}
			done := make(chan struct{}, 2)
			go func() { io.Copy(up, c); done <- struct{}{} }()
			go func() { io.Copy(c, up); done <- struct{}{} }()
			<-done
			c.Close()
			up.Close()
			<-done
		}()
	}
}

// viaPort returns rawURL pointing at 127.0.0.1:port, with the password
// replaced when password is not "".
func viaPort(t *testing.T, rawURL string, port int, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if password != "" {
		u.User = url.UserPassword(u.User.Username(), password)
	}
	return u.String()
}

func TestConnectAgainstPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := pgcluster.StartForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	td, err := c.CreateTenant(ctx, "wake")
	if err != nil {
		t.Fatal(err)
	}
	const hostDB = "127.0.0.1/wake"

	t.Run("wakes up after two dropped connections", func(t *testing.T) {
		p := startProxy(t, c.Port(), func(n int) bool { return n <= 2 })
		start := time.Now()
		conn, err := Connect(ctx, viaPort(t, td.URL, p.port(), ""), Options{BaseBackoff: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("Connect = %v", err)
		}
		defer conn.Close(context.Background())
		if got := p.startups.Load(); got != 3 {
			t.Errorf("proxy saw %d connection attempts, want 3", got)
		}
		var db, app string
		if err := conn.QueryRow(ctx, "SELECT current_database(), current_setting('application_name')").Scan(&db, &app); err != nil {
			t.Fatal(err)
		}
		if db != "wake" || app != "pgfleet" {
			t.Errorf("connected to %q as application %q, want wake and pgfleet", db, app)
		}
		// Two jittered backoffs, 25-50ms then 50-100ms.
		if d := time.Since(start); d < 75*time.Millisecond || d > 3*time.Second {
			t.Errorf("Connect took %v, want two backoffs (75ms to a few hundred ms)", d)
		}
	})

	for _, tc := range []struct{ attempts, want int }{{1, 1}, {3, 3}, {0, 4}} {
		t.Run(fmt.Sprintf("gives up after %d attempts on a compute that never wakes", tc.want), func(t *testing.T) {
			p := startProxy(t, c.Port(), func(int) bool { return true })
			conn, err := Connect(ctx, viaPort(t, td.URL, p.port(), ""), Options{Attempts: tc.attempts, BaseBackoff: 10 * time.Millisecond})
			if err == nil {
				conn.Close(context.Background())
				t.Fatal("Connect succeeded through a proxy that drops everything")
			}
			if got := int(p.startups.Load()); got != tc.want {
				t.Errorf("Options.Attempts %d: proxy saw %d connection attempts, want %d", tc.attempts, got, tc.want)
			}
			if !Transient(err) {
				t.Errorf("error %v is not transient", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, hostDB) {
				t.Errorf("error %q does not name %s", msg, hostDB)
			}
			if strings.Contains(msg, td.Password) {
				t.Errorf("error %q contains the password", msg)
			}
		})
	}

	t.Run("wrong password fails after one attempt", func(t *testing.T) {
		const wrong = "not-the-Password-42"
		p := startProxy(t, c.Port(), func(int) bool { return false })
		conn, err := Connect(ctx, viaPort(t, td.URL, p.port(), wrong), Options{Attempts: 4, BaseBackoff: 10 * time.Millisecond})
		if err == nil {
			conn.Close(context.Background())
			t.Fatal("Connect succeeded with a wrong password")
		}
		if got := p.startups.Load(); got != 1 {
			t.Errorf("proxy saw %d connection attempts, want 1 (auth failures are not transient)", got)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Errorf("error = %v, want a 28P01 PgError", err)
		}
		if Transient(err) {
			t.Errorf("Transient(%v) = true", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, hostDB) || strings.Contains(msg, wrong) || strings.Contains(msg, td.Password) {
			t.Errorf("error %q should name %s and contain no password", msg, hostDB)
		}
	})

	t.Run("missing database fails after one attempt", func(t *testing.T) {
		p := startProxy(t, c.Port(), func(int) bool { return false })
		u, _ := url.Parse(viaPort(t, td.URL, p.port(), ""))
		u.Path = "/nope"
		_, err := Connect(ctx, u.String(), Options{Attempts: 4, BaseBackoff: 10 * time.Millisecond})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
			t.Fatalf("error = %v, want a 3D000 PgError", err)
		}
		if got := p.startups.Load(); got != 1 {
			t.Errorf("proxy saw %d connection attempts, want 1", got)
		}
	})

	t.Run("cancel during backoff stops at once", func(t *testing.T) {
		p := startProxy(t, c.Port(), func(int) bool { return true })
		cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer ccancel()
		start := time.Now()
		_, err := Connect(cctx, viaPort(t, td.URL, p.port(), ""), Options{Attempts: 10, BaseBackoff: 10 * time.Second})
		if err == nil {
			t.Fatal("Connect succeeded")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Connect took %v after its context ended", d)
		}
		if got := p.startups.Load(); got != 1 {
			t.Errorf("proxy saw %d connection attempts, want 1", got)
		}
		if strings.Contains(err.Error(), td.Password) {
			t.Errorf("error %q contains the password", err)
		}
	})
}
