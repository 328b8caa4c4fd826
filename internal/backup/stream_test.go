package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pgfleet/pgfleet/internal/archive"
	"github.com/pgfleet/pgfleet/internal/pgtools"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
)

// streamJob is a job whose "pg_dump" is a shell script, storing into a
// fresh folder.
func streamJob(t *testing.T, script string, c archive.Compression, recipients []age.Recipient) (*Job, *dir.Store) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pg_dump")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := dir.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return NewJob(Options{Store: s, Format: archive.Custom, Compression: c, Level: 1, Recipients: recipients,
		PgDump: pgtools.Tool{Path: p, Version: "99.0", Major: 99}}), s
}

func assertEmpty(t *testing.T, s *dir.Store) {
	t.Helper()
	ctx := context.Background()
	objs, _ := s.List(ctx, "")
	ups, _ := s.Pending(ctx, "")
	if len(objs)+len(ups) > 0 {
		t.Errorf("left behind: objects %v, uploads %v", objs, ups)
	}
}

func TestStreamStoresWhatPgDumpWrote(t *testing.T) {
	data := bytes.Repeat([]byte("COPY row\tvalue 0123456789\n"), 1<<20) // 26 MiB: past the one-core stretch
	src := filepath.Join(t.TempDir(), "dump")
	os.WriteFile(src, data, 0o644)
	id, _ := age.GenerateX25519Identity()
	for _, c := range []archive.Compression{archive.Zstd, archive.Gzip, archive.None} {
		j, s := streamJob(t, `[ "$PGAPPNAME" = x ] || exit 3; case "$*" in *--snapshot=snap-1*) ;; *) exit 4;; esac; cat `+src, c, []age.Recipient{id.Recipient()})
		var dumped atomic.Int64
		readyCalled := false
		res, err := j.stream(context.Background(), "t/x.dump", []string{"PGAPPNAME=x"}, "snap-1", func() error { readyCalled = true; return nil }, &dumped)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if !readyCalled || res.DumpBytes != int64(len(data)) || dumped.Load() != int64(len(data)) {
			t.Errorf("%s: ready %v, dump bytes %d, want %d", c, readyCalled, res.DumpBytes, len(data))
		}
		rc, err := s.Get(context.Background(), "t/x.dump")
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(rc)
		rc.Close()
		sum := sha256.Sum256(stored)
		if int64(len(stored)) != res.ObjectBytes || hex.EncodeToString(sum[:]) != res.SHA256 {
			t.Errorf("%s: stored %d bytes, result says %d; sha256 differs", c, len(stored), res.ObjectBytes)
		}
		plain, err := archive.Decrypt(bytes.NewReader(stored), []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		dec, _ := archive.NewDecompressor(plain, c)
		got, err := io.ReadAll(dec)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: round trip: %d bytes, %v", c, len(got), err)
		}
	}
}

// The invariant: the object exists only when pg_dump exited 0 and ready
// said yes; otherwise nothing is left.
func TestStreamLeavesNothingOnFailure(t *testing.T) {
	big := `head -c 3000000 /dev/zero; head -c 3000000 /dev/urandom; `
	for name, c := range map[string]struct {
		script  string
		ready   error
		wantErr string
	}{
		"pg_dump exits 1 after output": {script: big + `echo "pg_dump: error: boom" >&2; exit 1`, wantErr: "pg_dump: error: boom"},
		"pg_dump killed by a signal":   {script: big + `kill -9 $$`, wantErr: "signal: killed"},
		"row counts fail":              {script: big, ready: errors.New("count failed"), wantErr: "count failed"},
		"pg_dump not a program":        {script: "exec /nonexistent", wantErr: "exit status"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, comp := range []archive.Compression{archive.Zstd, archive.None} {
				j, s := streamJob(t, c.script, comp, nil)
				var dumped atomic.Int64
				_, err := j.stream(context.Background(), "t/x.dump", nil, "s", func() error { return c.ready }, &dumped)
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("%s: err %v, want it to say %q", comp, err, c.wantErr)
				}
				assertEmpty(t, s)
			}
		})
	}
}

// Cancellation stops pg_dump (and whatever it started: a script's
// children) and leaves nothing, promptly.
func TestStreamCancelled(t *testing.T) {
	j, s := streamJob(t, `head -c 3000000 /dev/urandom; sleep 60`, archive.Zstd, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var dumped atomic.Int64
	go func() {
		for dumped.Load() < 3000000 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := j.stream(ctx, "t/x.dump", nil, "s", func() error { return nil }, &dumped)
	if err == nil || !strings.Contains(err.Error(), "nothing stored") {
		t.Errorf("err %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s after cancellation", took)
	}
	assertEmpty(t, s)
}
